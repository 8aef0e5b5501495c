/** Commands as data: descriptors, authorizations, the generic marshaller and frame codecs. */
export * from './command/descriptor.js';
export * from './command/auth.js';
export * from './command/marshal.js';
export * from './command/frames.js';
