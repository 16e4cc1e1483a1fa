/**
 * A racy window no machine is slow enough to leave: a file the test just
 * wrote is young under it. The default windows (2 s) would make "young"
 * depend on how fast the test runs.
 */
export const YOUNG = { racyMs: 3_600_000 };
