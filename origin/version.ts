/** The release, as `package.json` has it. */
export const KELP_VERSION = '0.1.0';
/**
 * The one Version string every server reports (`/dir/status`, `/vol/status`,
 * a volume server's `/status`, the status pages) and `kelp --version` prints,
 * as SeaweedFS reports one string everywhere.
 */
export const KELP_VERSION_STRING = `kelp ${KELP_VERSION}`;
