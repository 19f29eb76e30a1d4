/*
 * Engine state as records: the changelog value of an enterprise, the
 * dictionary its names are coded by, the partition record (watermark, held
 * events, resume offset), and the undo log that lets a batch be aborted
 * (include/riskd/engine.h).  docs/state.md describes the formats.
 *
 * An enterprise's record (ENGINE_STATE_VERSION 2): a version byte, the
 * dictionary's id (8 bytes), a base time, then fields in a fixed order.
 * Integers are LEB128 varints (signed ones zigzag); times are varints
 * relative to the base (0: none); numbers a varint of their decimal digits
 * when that gives them back exactly, else 8 little-endian bytes; strings a
 * length and the bytes, an event id that is a UUID 16 bytes.  Rules,
 * flags, grades, modes, fields, enum values and aggregates are numbers in
 * the dictionary, a record of its own (ENGINE_DICT_KEY) that names them by
 * id, path or fingerprint, never by an index of one compiled rule set: a
 * restore maps a dictionary to the rules once, so a record restores into
 * any rule set that has the same rules; what no longer exists is dropped.
 *
 * Records of version 1 name everything in the record itself (the same
 * fields, in the same order); they are read as they always were.
 *
 * The records are written by state_write.c and read by state_read.c over
 * the byte-level codec of state_codec.h; the dictionary is state_dict.c.
 * This file keeps the undo log that lets a batch be aborted (two batches
 * in flight) and the restore's entry.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/engine/state_int.h"

/* ---- batches ---- */

/*
 * Two batches may be uncommitted at once (engine_batch_seal): the sealed
 * one, whose transaction the daemon commits while the next is processed,
 * and the open one.  The undo log holds a segment per batch: the sealed
 * batch's (each enterprise as that batch found it) then the open batch's
 * (each as the sealed batch left it: seal clears the touched marks, so
 * the open batch logs an enterprise again even if the sealed one did).
 * Committing the sealed batch drops its segment; an abort rolls back the
 * open segment, then the sealed one, newest first, and puts back the
 * partition state (watermark, held events) of the oldest batch's start.
 */

void state_untouch(Engine *e, Ent *ent)
{
        if (!ent->touched || e->ntouched <= e->nsealed || e->touched[e->ntouched - 1] != ent)
                return;
        e->ntouched--;
        /* the open segment's: the sealed one is not cut */
        assert(e->undo_off[e->ntouched] == UINT64_MAX || e->undo_off[e->ntouched] >= e->undo_sealed);
        if (e->undo_off[e->ntouched] != UINT64_MAX)
                e->undo.len = e->undo_off[e->ntouched];
        ent->touched = 0;
}

void state_touch(Engine *e, Ent *ent)
{
        if (!e->in_batch || ent->touched)
                return;
        /* the open batch's segment follows the sealed one's */
        assert(e->nsealed <= e->ntouched && e->undo_sealed <= e->undo.len);
        ent->touched = 1;
        if (e->ntouched == e->ctouched) {
                e->ctouched = e->ctouched ? e->ctouched * 2 : 64;
                e->touched = xrealloc(e->touched, e->ctouched * sizeof(Ent *));
                e->undo_off = xrealloc(e->undo_off, e->ctouched * sizeof(uint64_t));
        }
        /* a new enterprise (never graded, nothing held) is removed on abort;
         * one the sealed batch logged is put back as that batch left it
         * (its own segment removes it, if it was new there) */
        bool fresh = !ent->sealed && ent->last_time == TIME_UNSET && ent->r->nc == 0 && ent->nw == 0 &&
                     ent->grade < 0;
        e->touched[e->ntouched] = ent;
        e->undo_off[e->ntouched] = fresh ? UINT64_MAX : e->undo.len;
        e->ntouched++;
        if (!fresh)
                state_ent_write(e, ent, &e->undo);
}

void engine_batch_begin(Engine *e)
{
        e->in_batch = true;
        e->ntouched = e->nsealed;
        e->undo.len = e->undo_sealed;
        e->meta_undo.len = 0;
        state_meta_write(e, 0, &e->meta_undo);
}

void engine_batch_changes(Engine *e, int64_t next_offset, EngineRecordFn fn, void *ud)
{
        state_dict_changes(e, fn, ud);
        state_changes(e, next_offset, fn, ud);
}

void state_changes(Engine *e, int64_t next_offset, EngineRecordFn fn, void *ud)
{
        Buf b = {0};
        for (uint32_t i = e->nsealed; i < e->ntouched; i++) {
                Ent *x = e->touched[i];
                b.len = 0;
                state_ent_write(e, x, &b);
                fn(ud, ent_key(x)->s, ent_key(x)->len, b.p, b.len);
        }
        b.len = 0;
        state_meta_write(e, next_offset, &b);
        fn(ud, ENGINE_META_KEY, sizeof(ENGINE_META_KEY) - 1, b.p, b.len);
        buf_free(&b);
}

void engine_batch_seal(Engine *e)
{
        if (!e->in_batch)
                return;
        for (uint32_t i = e->nsealed; i < e->ntouched; i++) {
                Ent *x = e->touched[i];
                x->touched = 0;
                x->sealed = 1;
                x->reload_dirty = 0; /* its record is written */
                x->reload_rescored = 0;
                x->grade_lost = 0;
        }
        if (!e->sealed) { /* else the two merge: the older start stays */
                Buf t = e->meta_sealed;
                e->meta_sealed = e->meta_undo;
                e->meta_undo = t;
                e->sealed_regrade = false;
        }
        e->sealed_regrade |= e->regrade_open;
        e->regrade_open = false;
        e->sealed = true;
        e->nsealed = e->ntouched;
        e->undo_sealed = e->undo.len;
        e->in_batch = false;
        e->meta_undo.len = 0;
}

bool engine_batch_sealed(const Engine *e)
{
        return e->sealed;
}

/* The sealed batch committed: its segment goes, the open batch's stays. */
static void sealed_commit(Engine *e)
{
        assert(e->nsealed <= e->ntouched && e->undo_sealed <= e->undo.len);
        for (uint32_t i = 0; i < e->nsealed; i++)
                e->touched[i]->sealed = 0;
        uint32_t n = e->ntouched - e->nsealed;
        if (n) /* (touched is NULL until an enterprise is) */
                memmove(e->touched, e->touched + e->nsealed, n * sizeof(Ent *));
        for (uint32_t i = 0; i < n; i++) {
                uint64_t off = e->undo_off[e->nsealed + i];
                assert(off == UINT64_MAX || (off >= e->undo_sealed && off < e->undo.len)); /* the open segment's */
                e->undo_off[i] = off == UINT64_MAX ? off : off - e->undo_sealed;
        }
        if (e->undo.len > e->undo_sealed)
                memmove(e->undo.p, e->undo.p + e->undo_sealed, e->undo.len - e->undo_sealed);
        e->undo.len -= e->undo_sealed;
        e->ntouched = n;
        e->nsealed = 0;
        e->undo_sealed = 0;
        e->sealed = false;
        e->sealed_regrade = false;
        e->meta_sealed.len = 0;
}

void engine_batch_commit(Engine *e)
{
        state_dict_committed(e);
        if (e->sealed) {
                sealed_commit(e);
                return;
        }
        for (uint32_t i = 0; i < e->ntouched; i++) {
                e->touched[i]->touched = 0;
                e->touched[i]->reload_dirty = 0; /* its record is written */
                e->touched[i]->reload_rescored = 0;
                e->touched[i]->grade_lost = 0;
        }
        e->regrade_open = false;
        e->in_batch = false;
        e->ntouched = 0;
        e->undo.len = 0;
        e->meta_undo.len = 0;
}

void engine_batch_abort(Engine *e)
{
        if (!e->in_batch && !e->sealed)
                return;
        if (e->regrade_open || e->sealed_regrade)
                e->regrade_due = true;
        state_dict_aborted(e);
        /* newest first: the open segment, then the sealed one */
        for (uint32_t i = e->ntouched; i-- > 0;) {
                Ent *x = e->touched[i];
                if (e->undo_off[i] == UINT64_MAX) {
                        ent_remove(e, x);
                        continue;
                }
                ent_clear(e, x);
                /* newest first: the open segment's records, then the sealed one's */
                assert(e->undo_off[i] < (i >= e->nsealed ? e->undo.len : e->undo_sealed));
                int r = state_ent_read(e, x, e->undo.p + e->undo_off[i], e->undo.len - e->undo_off[i]);
                assert(r == 0); /* what state_ent_write wrote decodes */
                (void)r;
                x->touched = 0;
                x->sealed = 0;
        }
        e->ntouched = e->nsealed = 0; /* some were freed: nothing left for commit to clear */
        const Buf *m = e->sealed ? &e->meta_sealed : &e->meta_undo;
        Rd r = {(const unsigned char *)m->p, (const unsigned char *)m->p + m->len, false};
        state_meta_read(e, &r);
        timer_rebuild(e);
        e->sealed = false;
        e->sealed_regrade = false;
        e->undo_sealed = 0;
        e->meta_sealed.len = 0;
        engine_batch_commit(e);
}

/* ---- restore ---- */

int engine_restore_record(Engine *e, const char *key, size_t klen, const void *val, size_t vlen)
{
        Rd r = {val, (const unsigned char *)val + vlen, false};
        if (klen == sizeof(ENGINE_META_KEY) - 1 && memcmp(key, ENGINE_META_KEY, klen) == 0) {
                e->restore_next = state_meta_read(e, &r);
                reach_clear(&e->reach);
                return r.bad ? -EINVAL : 0;
        }
        if (klen >= sizeof(ENGINE_DICT_KEY) - 1 && memcmp(key, ENGINE_DICT_KEY, sizeof(ENGINE_DICT_KEY) - 1) == 0)
                return state_dict_restore(e, key, klen, val, vlen);
        Ent *x = ent_get(e, key, (uint32_t)klen);
        if (!x)
                return -ENOSPC;
        ent_clear(e, x);
        x->reload_dirty = 0; /* of an earlier record of the key, now replaced */
        x->reload_rescored = 0;
        x->grade_lost = 0;
        int rc = 0;
        if (vlen == 0) /* tombstone */
                ent_remove(e, x);
        else
                rc = state_ent_read(e, x, val, vlen);
        /* a record that does not decode keeps what came before the fault:
         * not the crashed batch's state */
        if (rc == 0)
                reach_put(&e->reach, key, klen);
        return rc;
}

void engine_restore_mark(Engine *e)
{
        reach_mark(&e->reach);
}

void engine_replay_over(Engine *e)
{
        reach_free(&e->reach);
}

int64_t engine_restore_finish(Engine *e)
{
        timer_rebuild(e);
        if (e->state_rules[0] && strcmp(e->state_rules, e->rs->version) != 0) {
                /* the state is of other rules: grade everyone again (engine_regrade) */
                snprintf(e->reload_from, sizeof(e->reload_from), "%s", e->state_rules);
                e->regrade_due = true;
        }
        return e->restore_next;
}
