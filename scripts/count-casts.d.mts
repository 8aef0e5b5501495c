export interface CastCounts {
  assertions: number;
  asAny: number;
  anyTypes: number;
}
export function walk(dir: string): string[];
export function countCasts(fileName: string, text: string): CastCounts;
export function countDir(dir: string, base?: string): { total: CastCounts; files: Record<string, CastCounts> };
