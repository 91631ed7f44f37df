/**
 * A volume's deletes, and the undo of a replicated change whose fan-out
 * failed (docs/decisions/0004): both are appends (a tombstone, or a copy of
 * the record the key had), durable under the fsync policy like a write
 * (volume-write.ts). On a frozen `.dat` (tiered, or in a tier transfer) a
 * delete is an index entry only.
 */
import { ftruncateSync } from 'node:fs';
import { ConflictError, NotFoundError, ReadOnlyVolumeError } from '../../shared/errors.ts';
import { encodeIdxEntry, IDX_ENTRY_SIZE, TOMBSTONE_FILE_SIZE, toStoredOffset } from '../../shared/idx.ts';
import { encodeNeedle } from '../../shared/needle.ts';
import { pwriteAll } from '../fs/files.ts';
import { type EntryChange, VolumeWrites } from './volume-write.ts';

export interface DeleteResult {
  /** The deleted needle's stored data size. */
  size: number;
  change: EntryChange;
}

export abstract class VolumeDeletes extends VolumeWrites {
  /**
   * Appends a tombstone record and a delete entry. Returns the deleted needle's
   * stored data size and what changed. A wrong cookie is a 404, like a missing key.
   */
  async delete(key: bigint, cookie: number): Promise<DeleteResult> {
    const entry = this.needles.get(key);
    if (entry === undefined || entry.size < 0) throw new NotFoundError('not found');
    const needle = await this.recordOf(key, entry.offset, entry.size);
    if (needle.cookie !== cookie) throw new NotFoundError('not found');
    if (this.closed) throw new ReadOnlyVolumeError(`volume ${this.id} is closing`);
    this.assertNotFrozen('deletes are');
    if (this.datFrozen) {
      // The remote .dat is immutable: a delete is an index entry only, with no
      // tombstone record (offset 0, as SeaweedFS does); `kelp tier compact` reclaims the bytes.
      // The same while a kept local copy or a transfer exists: a tombstone appended there would
      // be lost with it, and its index entry, pointing past the object's end, dropped at the next
      // open (recovery.ts), bringing the needle back.
      try {
        pwriteAll(this.idxFd, encodeIdxEntry({ key, offset: 0, size: TOMBSTONE_FILE_SIZE }), this.idxSize);
      } catch (err) {
        ftruncateSync(this.idxFd, this.idxSize);
        throw this.appendFailure(err);
      }
      this.idxSize += IDX_ENTRY_SIZE;
      this.modifiedAt = this.config.now();
      this.needles.delete(key, 0);
      const change = this.changed(key, cookie, entry);
      await this.durable();
      return { size: needle.data.length, change };
    }
    const record = encodeNeedle(
      { flags: 0, cookie, id: key, data: new Uint8Array(0), appendAtNs: this.nextAppendAtNs() },
      this.version,
    );
    const offset = this.append(record, key, TOMBSTONE_FILE_SIZE);
    this.needles.delete(key, toStoredOffset(offset));
    const change = this.changed(key, cookie, entry);
    await this.durable();
    return { size: needle.data.length, change };
  }

  /**
   * Undoes `change` (a replicated write or delete whose fan-out failed,
   * docs/decisions/0004): the key gets back the entry it had before. A needle
   * that was there is copied, record verbatim, to the end of the `.dat` (its
   * bytes are still there: the `.dat` is append-only); a key that was absent
   * or deleted gets a tombstone. Appending rather than pointing the index back
   * at the old offset keeps what recovery.ts relies on: entries follow `.dat`
   * order, so the last entry's record ends where unindexed records may start
   * (an entry pointing back would make it re-index, and so bring back, the
   * very needle this removes). Durable under the fsync policy once it resolves.
   *
   * Refused (ConflictError, nothing changed) when the key's entry is no longer
   * the one the change left (a later write or delete stands), when vacuum has
   * compacted the volume since (every offset moved, and the old needle may be
   * gone), or when the `.dat` is frozen (tiered: nothing may be appended).
   * Not refused for read-only: the change being undone may be what sealed it.
   */
  async restore(change: EntryChange): Promise<void> {
    const { key, cookie, before, after } = change;
    const what = `volume ${this.id}, needle ${key.toString(16)}`;
    if (this.closed) throw new ReadOnlyVolumeError(`volume ${this.id} is closing`);
    // A copy is reading the files: the change is kept (and copied), as when vacuum moved it.
    if (this.frozen) throw new ConflictError(`volume ${this.id} is being moved: the change is kept`);
    if (this.superBlock.compactionRevision !== change.revision) {
      throw new ConflictError(`${what}: the volume was compacted since the change, which is kept`);
    }
    const now = this.needles.get(key);
    if (now === undefined || now.offset !== after.offset || now.size !== after.size) {
      throw new ConflictError(`${what}: changed again since, so the later change stands`);
    }
    if (this.datFrozen) {
      throw new ConflictError(`${what}: the volume is tiered or in a tier transfer, so the change is kept`);
    }
    if (before === undefined || before.size < 0) {
      const record = encodeNeedle(
        { flags: 0, cookie, id: key, data: new Uint8Array(0), appendAtNs: this.nextAppendAtNs() },
        this.version,
      );
      this.assertRoom(record.length);
      this.needles.delete(key, toStoredOffset(this.append(record, key, TOMBSTONE_FILE_SIZE)));
    } else {
      this.needles.set(key, toStoredOffset(this.appendCopy(key, before.offset, before.size)), before.size);
    }
    this.modifiedAt = this.config.now();
    if (this.datSize >= this.config.sizeLimitBytes) this.setReadOnly(true);
    await this.durable();
  }
}
