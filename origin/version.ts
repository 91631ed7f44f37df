/** Reported by `/status`, `/dir/status` and `kelp --version`. */
export const KELP_VERSION = '0.1.0';
