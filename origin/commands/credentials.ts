/** The credentials a `kelp` client command presents (docs/security.md). */
import type { AuthHeaders } from '../../shared/client/http.ts';
import { withClusterAuth } from '../security/cluster-auth.ts';

/**
 * Admin calls of `kelp tier`: signed as a cluster member when the cluster key
 * is at hand (the tiering service runs beside the cluster), else the admin key.
 */
export function adminAuth(o: { clusterKey?: string; adminKey?: string }): AuthHeaders {
  return (method, url) => {
    if (o.clusterKey) return withClusterAuth(o.clusterKey, method, url);
    return o.adminKey ? { Authorization: `Bearer ${o.adminKey}` } : {};
  };
}

/** `Authorization: Bearer <client key>` for the master's write API, when a key is configured. */
export function clientAuth(key: string | undefined): Record<string, string> {
  return key ? { Authorization: `Bearer ${key}` } : {};
}
