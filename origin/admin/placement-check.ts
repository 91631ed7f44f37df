/**
 * Whether a set of servers holding a volume meets its replica placement
 * "xyz" (shared/placement.ts), as growth places copies (origin/master/growth.ts):
 * one main copy, z more on other servers of its rack, y on other racks of its
 * data center (one per rack), x in other data centers (one per data center).
 */
import type { Placement } from '../../shared/placement.ts';

export interface Where {
  url: string;
  dataCenter: string;
  rack: string;
}

/**
 * `partial`: the set may still be short of copies (a repair adds the rest),
 * but nothing in it may break the placement.
 */
export function meetsPlacement(holders: Where[], placement: Placement, partial = false): boolean {
  if (new Set(holders.map((h) => h.url)).size !== holders.length) return false;
  if (holders.length === 0) return partial;
  const want = placement.diffDataCenter + placement.diffRack + placement.sameRack + 1;
  if (partial ? holders.length > want : holders.length !== want) return false;
  const fits = (n: number, limit: number) => (partial ? n <= limit : n === limit);
  return holders.some((main) => {
    const others = holders.filter((h) => h !== main);
    const sameRack = others.filter((h) => h.dataCenter === main.dataCenter && h.rack === main.rack);
    const otherRacks = others.filter((h) => h.dataCenter === main.dataCenter && h.rack !== main.rack);
    const otherDcs = others.filter((h) => h.dataCenter !== main.dataCenter);
    return (
      fits(sameRack.length, placement.sameRack) &&
      fits(otherRacks.length, placement.diffRack) &&
      new Set(otherRacks.map((h) => h.rack)).size === otherRacks.length &&
      fits(otherDcs.length, placement.diffDataCenter) &&
      new Set(otherDcs.map((h) => h.dataCenter)).size === otherDcs.length
    );
  });
}
