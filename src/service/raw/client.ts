/** The raw channel's client lives with the service's other client code (the tools bundle it). */
export * from '../client/raw-client.js';
