/**
 * What a server address looks like, checked wherever one arrives (heartbeats,
 * leaves, moves, admin calls). Apart from the heartbeat schema so volume
 * servers can check addresses without loading zod (issue 15: RAM per needle).
 */

const HOST = String.raw`(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]{2,45}\])`;
const PORT = String.raw`(?:[1-9]\d{0,3}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5])`;
/** `host:port`: how servers reach each other. */
export const HOST_PORT = new RegExp(`^${HOST}:${PORT}$`);
/** A public address: `host:port`, or an http(s) URL of a host with no path, query or credentials. */
export const PUBLIC_URL = new RegExp(`^(?:https?://${HOST}(?::${PORT})?|${HOST}:${PORT})$`);
