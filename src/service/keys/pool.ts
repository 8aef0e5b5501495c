/**
 * The pool of persistent handles the service hands out to tenants' keys. A handle is free when
 * it is not reserved, not in the registry (in any state: a handle whose delete is not yet
 * durable is still taken) and not occupied in the TPM.
 */
import { formatHandle, isPersistentHandle, isReservedHandle } from '../protocol/handles.js';

export const DEFAULT_POOL_START = 0x81010000;
export const DEFAULT_POOL_SIZE = 0x10000;

export class HandlePool {
  readonly first: number;
  readonly last: number;

  constructor(start: number, size: number) {
    if (!Number.isInteger(start) || !Number.isInteger(size) || size < 1) throw new RangeError('pool start and size must be integers, size ≥ 1');
    const last = start + size - 1;
    if (!isPersistentHandle(start) || !isPersistentHandle(last)) {
      throw new RangeError(`the pool ${formatHandle(start)}..${formatHandle(last)} must lie within the persistent range 0x81000000..0x817fffff`);
    }
    if (isReservedHandle(last) && last >= 0x81800000) throw new RangeError('the pool must not reach the platform range 0x81800000..0x81ffffff');
    this.first = start;
    this.last = last;
  }

  contains(h: number): boolean {
    return h >= this.first && h <= this.last;
  }

  /** Lowest free handle, or undefined when the pool is exhausted. */
  allocate(taken: (h: number) => boolean): number | undefined {
    for (let h = this.first; h <= this.last; h++) {
      if (!isReservedHandle(h) && !taken(h)) return h;
    }
    return undefined;
  }

  toString(): string {
    return `${formatHandle(this.first)}..${formatHandle(this.last)}`;
  }
}
