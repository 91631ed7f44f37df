/** Bindings and vars the Worker reads (wrangler.toml [vars] and secrets). */
export interface Env {
  MASTER_URL: string;
  LOOKUP_TTL_SECONDS?: string;
  NEGATIVE_TTL_SECONDS?: string;
  SIGNING_KEY?: string;
  RESIZE_SIGNING_KEY?: string;
}
