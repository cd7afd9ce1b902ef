/** Exit code for "the thing you asked for is not in the cache". */
export const EXIT_MISS = 2;

/** Global client options (DESIGN §1). */
export interface GlobalOptions {
  url: string;
  authorization?: string;
  platform?: boolean;
  daily?: boolean;
  hourly?: boolean;
  quiet?: boolean;
}
