/**
 * The etcd client of a master (npm `etcd3`, gRPC): every member listed, so a
 * member that dies costs a retry on another, and a deadline on every unary
 * call, so an etcd that stops answering fails a call instead of hanging it.
 */
import { Etcd3 } from 'etcd3';
import { ETCD_CALL_TIMEOUT_MS } from './etcd-state-store.ts';

/** How long connecting to one etcd member may take. */
const DIAL_TIMEOUT_MS = 2_000;

/** A client of the etcd members `hosts` (`host:port` each). */
export function etcdClient(hosts: string[]): Etcd3 {
  return new Etcd3({
    hosts: hosts.map((h) => `http://${h}`),
    dialTimeout: DIAL_TIMEOUT_MS,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + ETCD_CALL_TIMEOUT_MS }),
  });
}
