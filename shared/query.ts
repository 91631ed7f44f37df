/**
 * Boolean query parameters such as `dl`, read as SeaweedFS reads them (Go's
 * strconv.ParseBool), so `?dl=1` and `?dl=true` mean the same at the edge and
 * at every volume server.
 */
const TRUE_VALUES: ReadonlySet<string> = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);

export function isTrueParam(raw: string | null | undefined): boolean {
  return raw !== null && raw !== undefined && TRUE_VALUES.has(raw);
}
