/**
 * What `volume.balance` and `volume.fix.replication` would do, worked out
 * from the cluster view alone (pure: the dry run prints exactly this, and the
 * real run carries it out with origin/admin/move.ts).
 */
import type { HeartbeatVolume } from '../../shared/api.ts';
import { copyCount, parsePlacement } from '../../shared/placement.ts';
import { type AdminNode, type ClusterView, holdersById } from './cluster.ts';
import { meetsPlacement } from './placement-check.ts';

/** Most moves one balance plans: a large imbalance is evened out over several runs. */
export const MAX_BALANCE_MOVES = 100;

export type Action =
  | { kind: 'move'; volumeId: number; from: string; to: string; why: string }
  | { kind: 'replicate'; volumeId: number; from: string; to: string; why: string }
  | { kind: 'remove'; volumeId: number; from: string; why: string }
  /** An interrupted move: run it again to finish (`mode` as it was started). */
  | { kind: 'resume'; volumeId: number; from: string; to: string; mode: 'move' | 'copy'; why: string }
  /** An interrupted move whose copy never arrived: the source takes writes again. */
  | { kind: 'unfreeze'; volumeId: number; from: string; why: string }
  /** An arriving copy whose source was unfrozen since: it may be stale, so it goes. */
  | { kind: 'dropArrival'; volumeId: number; from: string; why: string }
  /** Nothing can be done now (a server down, no room): said, not done. */
  | { kind: 'skip'; volumeId: number; why: string };

export function describe(a: Action): string {
  switch (a.kind) {
    case 'move':
      return `move volume ${a.volumeId} from ${a.from} to ${a.to} (${a.why})`;
    case 'replicate':
      return `copy volume ${a.volumeId} from ${a.from} to ${a.to} (${a.why})`;
    case 'resume':
      return `finish the ${a.mode} of volume ${a.volumeId} from ${a.from} to ${a.to} (${a.why})`;
    case 'remove':
      return `remove volume ${a.volumeId} from ${a.from} (${a.why})`;
    case 'unfreeze':
      return `unfreeze volume ${a.volumeId} on ${a.from} (${a.why})`;
    case 'dropArrival':
      return `remove the arriving copy of volume ${a.volumeId} from ${a.from} (${a.why})`;
    case 'skip':
      return `leave volume ${a.volumeId} (${a.why})`;
  }
}

function freeSlots(n: AdminNode, added: Map<string, number>): number {
  return n.maxVolumeCount - n.volumes.length - (added.get(n.url) ?? 0);
}

/**
 * Moves that spread volumes evenly over the alive servers (by the share of
 * their slots in use), writable and sealed volumes each on their own, as
 * SeaweedFS's volume.balance does. A move is planned only if the volume's
 * holders still meet its placement afterwards, so racks and data centers
 * stay as replication asks.
 */
export function planBalance(view: ClusterView, opts: { collection?: string } = {}): Action[] {
  const nodes = view.nodes.filter((n) => n.alive && n.maxVolumeCount > 0);
  const actions: Action[] = [];
  if (nodes.length < 2) return actions;
  // Where each volume is, kept current as moves are planned.
  const where = new Map<number, Set<string>>();
  const vols = new Map<number, HeartbeatVolume>();
  for (const n of nodes) {
    for (const v of n.volumes) {
      where.set(v.id, new Set([...(where.get(v.id) ?? []), n.url]));
      vols.set(v.id, v);
    }
  }
  const byUrl = new Map(nodes.map((n) => [n.url, n]));
  const count = new Map(nodes.map((n) => [n.url, n.volumes.length]));
  for (const sealed of [false, true]) {
    const eligible = (v: HeartbeatVolume) =>
      v.readOnly === sealed &&
      !v.moving &&
      !v.remote &&
      (opts.collection === undefined || v.collection === opts.collection);
    const held = new Map(nodes.map((n) => [n.url, new Set(n.volumes.filter(eligible).map((v) => v.id))]));
    const ratio = (url: string) => held.get(url)!.size / byUrl.get(url)!.maxVolumeCount;
    const done = new Set<string>();
    while (actions.length < MAX_BALANCE_MOVES) {
      const order = nodes
        .map((n) => n.url)
        .filter((u) => !done.has(u))
        .sort((a, b) => ratio(b) - ratio(a));
      const heavy = order[0];
      if (!heavy) break;
      let moved = false;
      for (const light of [...order].reverse()) {
        if (light === heavy) break;
        const h = byUrl.get(heavy)!;
        const l = byUrl.get(light)!;
        // Only a move that narrows the gap: otherwise volumes would just trade places.
        if ((held.get(heavy)!.size - 1) / h.maxVolumeCount < (held.get(light)!.size + 1) / l.maxVolumeCount)
          continue;
        if (l.maxVolumeCount - count.get(light)! <= 0) continue;
        for (const id of [...held.get(heavy)!].sort((a, b) => a - b)) {
          const holders = where.get(id)!;
          if (holders.has(light)) continue;
          const v = vols.get(id)!;
          const after = [...holders]
            .filter((u) => u !== heavy)
            .concat(light)
            .map((u) => byUrl.get(u)!);
          const placement = parsePlacement(v.replicaPlacement);
          // A volume already off its placement may move only into a placement that holds.
          if (!meetsPlacement(after, placement)) continue;
          actions.push({
            kind: 'move',
            volumeId: id,
            from: heavy,
            to: light,
            why: `${sealed ? 'sealed' : 'writable'} volumes: ${held.get(heavy)!.size} on ${heavy}, ${held.get(light)!.size} on ${light}`,
          });
          held.get(heavy)!.delete(id);
          held.get(light)!.add(id);
          holders.delete(heavy);
          holders.add(light);
          count.set(heavy, count.get(heavy)! - 1);
          count.set(light, count.get(light)! + 1);
          moved = true;
          break;
        }
        if (moved) break;
      }
      if (!moved) done.add(heavy);
    }
  }
  return actions;
}

/**
 * Repairs of replication: interrupted moves resolved first, then missing
 * copies made (from a healthy holder, onto a server that keeps the placement)
 * and extra ones removed (the smallest copy, which is the stale one if any
 * is). A volume with a holder down is left alone: its copies cannot be counted.
 */
export function planFixReplication(view: ClusterView): Action[] {
  const actions: Action[] = [];
  const alive = new Map(view.nodes.filter((n) => n.alive).map((n) => [n.url, n]));
  const anyNode = new Map(view.nodes.map((n) => [n.url, n]));
  const added = new Map<string, number>();
  const holders = holdersById(view);
  // A holder that is down: the master still lists its last heartbeat.
  const downHolders = new Map<number, string[]>();
  for (const n of view.nodes) {
    if (n.alive) continue;
    for (const v of n.volumes) downHolders.set(v.id, [...(downHolders.get(v.id) ?? []), n.url]);
  }
  for (const [id, hs] of holders) {
    const moving = hs.filter((h) => h.v.moving);
    if (moving.length) {
      for (const { node, v } of moving) {
        const m = v.moving!;
        const peerNode = alive.get(m.peer);
        const peerCopy = peerNode?.volumes.find((x) => x.id === id);
        if (!peerNode) {
          actions.push({ kind: 'skip', volumeId: id, why: `in a ${m.mode} with ${m.peer}, which is down` });
        } else if (m.role === 'target') {
          if (!peerCopy) {
            // The source is gone: the move had passed its delete; only the finish is left.
            actions.push({
              kind: 'resume',
              volumeId: id,
              from: m.peer,
              to: node.url,
              mode: m.mode,
              why: 'its source was already removed',
            });
          } else if (peerCopy.moving?.role === 'source' && peerCopy.moving.peer === node.url) {
            actions.push({
              kind: 'resume',
              volumeId: id,
              from: m.peer,
              to: node.url,
              mode: m.mode,
              why: 'the copy arrived and verified',
            });
          } else {
            actions.push({
              kind: 'dropArrival',
              volumeId: id,
              from: node.url,
              why: `${m.peer} took writes again, so this copy may be stale`,
            });
          }
        } else if (!peerCopy) {
          actions.push({
            kind: 'unfreeze',
            volumeId: id,
            from: node.url,
            why: `its copy never arrived on ${m.peer}`,
          });
        }
        // A source whose target holds the arriving copy: handled from the target's side.
      }
      continue;
    }
    if (downHolders.has(id)) {
      actions.push({
        kind: 'skip',
        volumeId: id,
        why: `a holder is down (${downHolders.get(id)!.join(', ')})`,
      });
      continue;
    }
    const v = hs[0]!.v;
    const placement = parsePlacement(v.replicaPlacement);
    const want = copyCount(placement);
    const urls = hs.map((h) => h.node.url);
    if (hs.length < want) {
      let current = hs.map((h) => anyNode.get(h.node.url)!);
      const source = [...hs].sort((a, b) => b.v.size - a.v.size)[0]!.node.url;
      for (let i = hs.length; i < want; i++) {
        const candidates = [...alive.values()]
          .filter((n) => !current.some((c) => c.url === n.url) && freeSlots(n, added) > 0)
          .sort((a, b) => freeSlots(b, added) - freeSlots(a, added) || a.url.localeCompare(b.url));
        const pick = candidates.find((n) => meetsPlacement([...current, n], placement, true));
        if (!pick) {
          actions.push({
            kind: 'skip',
            volumeId: id,
            why: `needs ${want} copies, has ${current.length}, and no server with a free slot keeps placement ${v.replicaPlacement}`,
          });
          break;
        }
        actions.push({
          kind: 'replicate',
          volumeId: id,
          from: source,
          to: pick.url,
          why: `${current.length} of ${want} copies`,
        });
        added.set(pick.url, (added.get(pick.url) ?? 0) + 1);
        current = [...current, pick];
      }
    } else if (hs.length > want) {
      let current = [...hs];
      while (current.length > want) {
        // The smallest copy first (the stale one, if they differ), then the fullest server.
        const ranked = [...current].sort(
          (a, b) => a.v.size - b.v.size || b.node.volumes.length - a.node.volumes.length,
        );
        const drop = ranked.find((h) =>
          meetsPlacement(
            current.filter((c) => c !== h).map((c) => c.node),
            placement,
            true,
          ),
        );
        if (!drop) break;
        actions.push({
          kind: 'remove',
          volumeId: id,
          from: drop.node.url,
          why: `${current.length} copies, placement ${v.replicaPlacement} wants ${want}`,
        });
        current = current.filter((c) => c !== drop);
      }
    } else if (
      !meetsPlacement(
        hs.map((h) => h.node),
        placement,
      )
    ) {
      actions.push({
        kind: 'skip',
        volumeId: id,
        why: `copies on ${urls.join(', ')} break placement ${v.replicaPlacement}; volume.balance or volume.move can fix that`,
      });
    }
  }
  return actions;
}
