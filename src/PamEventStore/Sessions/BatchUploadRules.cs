using PamEventStore.Crypto;
using PamEventStore.Recording;

namespace PamEventStore.Sessions;

/// <summary>
/// A batch as the gateway sent it: where it starts in its recording file, (our extension) where it
/// ends, and the org's fingerprint key it is compared with stored batches under.
/// </summary>
public sealed record IncomingBatch(long StartOffset, long? EndOffset, RecordingBatch Content, ContentFingerprint Fingerprints);

public abstract record UploadDecision;

/// <summary>Already stored exactly so: answer as if accepted, store nothing.</summary>
public sealed record DuplicateBatch : UploadDecision;

/// <summary>
/// Store <see cref="Batch"/> (its ciphertext still to be sealed) with the events that go before it.
/// <see cref="Content"/> is what the batch holds: the whole upload, or only its new suffix.
/// </summary>
public sealed record AcceptBatch(SessionActivated? Activation, GapDetected? Gap, BatchUploaded Batch, RecordingBatch Content) : UploadDecision
{
    public IEnumerable<SessionEvent> Events(BatchUploaded sealedBatch)
    {
        if (Activation is not null) yield return Activation;
        if (Gap is not null) yield return Gap;
        yield return sealedBatch;
    }
}

public enum Rejection
{
    /// <summary>Different content at a stored offset.</summary>
    BatchConflict,

    /// <summary>Starts inside the byte range of the batch before it.</summary>
    BatchOverlap,

    /// <summary>An offset below the newest accepted one, where nothing is stored.</summary>
    OutOfOrder,

    /// <summary>The session ended longer ago than the grace window.</summary>
    SessionClosed,

    /// <summary>The whole recording already arrived through the legacy upload (recorded as a conflict).</summary>
    LegacyLogsStored,
}

/// <summary>Refuse the upload; <see cref="Conflict"/> or <see cref="Late"/>, when present, is recorded nonetheless.</summary>
public sealed record RejectBatch(Rejection Reason, BatchConflictRejected? Conflict, LateBatchRefused? Late = null) : UploadDecision
{
    /// <summary>What the refusal records in the session's stream: nothing, or the conflict or late upload.</summary>
    public IEnumerable<SessionEvent> Events()
    {
        if (Conflict is not null) yield return Conflict;
        if (Late is not null) yield return Late;
    }
}

/// <summary>
/// How a session decides an uploaded batch. Gateways deliver at least once (the offset only advances
/// after a 2xx), so the same batch arrives again after timeouts and restarts and must be answered
/// exactly as before; anything else at a stored offset is a conflict that is refused and recorded,
/// never written over what is stored.
/// </summary>
public static class BatchUploadRules
{
    /// <summary>
    /// An offset older than the newest accepted one is checked against what is stored there, which
    /// the session does not hold: the caller looks it up and passes it to <see cref="Decide"/>.
    /// </summary>
    public static bool NeedsStoredSegments(PamSession session, long startOffset) =>
        session.Tail is { } tail && startOffset < tail.StartOffset;

    /// <param name="storedAtOlderOffset">
    /// The segments stored at <c>upload.StartOffset</c> when <see cref="NeedsStoredSegments"/> said so
    /// (empty when nothing is stored there); otherwise ignored.
    /// </param>
    public static UploadDecision Decide(
        PamSession session,
        IncomingBatch upload,
        IReadOnlyList<OffsetSegment>? storedAtOlderOffset,
        Actor actor,
        DateTimeOffset now,
        TimeSpan endedSessionGrace)
    {
        var tail = session.Tail;
        var isNewOffset = tail is null || upload.StartOffset > tail.StartOffset;
        var stored = StoredAt(session, upload, storedAtOlderOffset);

        // A retry is answered the same whenever it comes, even after the session closed.
        if (IsStored(stored, upload)) return new DuplicateBatch();

        if (session.Status == SessionStatus.Ended && now > session.EndedAt + endedSessionGrace)
        {
            // New recording (past the stored batches, or the tail's stored events followed by more, as
            // in c) is lost to the session: the refusal is recorded, once while the same content keeps
            // coming, and the session no longer reads as complete.
            var lost = isNewOffset || ExtendsTail(tail, upload);
            return new RejectBatch(Rejection.SessionClosed, null, lost ? Unrepeated(session, Late(upload, actor, now)) : null);
        }

        // The gateway sent the whole recording through the legacy upload: a batch after it contradicts
        // that, and what it holds is recorded as a conflict's is (once while the same content keeps coming).
        if (session.Legacy is not null) return new RejectBatch(Rejection.LegacyLogsStored, Conflict(session, upload, "legacy-logs-stored", actor, now));

        if (isNewOffset)
        {
            if (tail?.EndOffset is { } previousEnd && upload.StartOffset < previousEnd)
            {
                return new RejectBatch(Rejection.BatchOverlap, Conflict(session, upload, "overlaps-previous-batch", actor, now));
            }

            // A recording file starts at offset 0, so a first batch starting later is missing its beginning.
            var expectedStart = tail is null ? 0 : tail.EndOffset;
            var gap = expectedStart is { } from && upload.StartOffset > from ? new GapDetected(from, upload.StartOffset, now) : null;
            return Accept(session, upload, firstEventIndex: 0, gap, actor, now);
        }

        if (stored.Count == 0) return new RejectBatch(Rejection.OutOfOrder, null);

        // The gateway crashed after we stored the batch but before it saved its offset, then read on
        // further: the stored events come first, followed by new ones. Keep only the new ones. Only at
        // the newest offset: further back, the batches after it already hold what followed.
        if (ExtendsTail(tail, upload)) return Accept(session, upload, tail!.Segments[^1].EventCountEnd, gap: null, actor, now);

        return new RejectBatch(Rejection.BatchConflict, Conflict(session, upload, "content-differs-from-stored-batch", actor, now));
    }

    /// <summary>
    /// Fewer events than are stored at the upload's offset, matching none of its stored segments: it may
    /// be the first events of what is stored, sent before and overtaken by its own longer retry (a
    /// request that stalled past the gateway's timeout, whose next tick sent everything from the same
    /// offset). Only the stored content can tell: the caller opens it and asks <see cref="IsStoredPrefix"/>
    /// before <see cref="Decide"/>, which would take it for a conflict.
    /// </summary>
    /// <remarks>
    /// Not when the same content was the session's last conflict at that offset: it was opened then and
    /// found not to be, and a refused gateway sends it again on every tick.
    /// </remarks>
    public static bool MayBeStoredPrefix(PamSession session, IncomingBatch upload, IReadOnlyList<OffsetSegment>? storedAtOlderOffset) =>
        StoredAt(session, upload, storedAtOlderOffset) is [.., var last] stored
        && upload.Content.EventCount < last.EventCountEnd
        && !IsStored(stored, upload)
        && session.LastConflict?.IsRepeatedBy(upload.StartOffset, upload.Fingerprints.Of(upload.Content.Sha256())) != true;

    /// <param name="storedAtOffset">Every event stored at the upload's offset, in order, opened.</param>
    public static bool IsStoredPrefix(IncomingBatch upload, RecordingBatch storedAtOffset) =>
        upload.Content.EventCount < storedAtOffset.EventCount
        && storedAtOffset.PrefixSha256(upload.Content.EventCount).AsSpan().SequenceEqual(upload.Content.Sha256());

    /// <summary>The segments stored at the upload's offset: the newest batch's, or those looked up for an older offset.</summary>
    private static IReadOnlyList<OffsetSegment> StoredAt(PamSession session, IncomingBatch upload, IReadOnlyList<OffsetSegment>? storedAtOlderOffset) =>
        session.Tail is not { } tail || upload.StartOffset > tail.StartOffset ? []
        : upload.StartOffset == tail.StartOffset ? tail.Segments
        : storedAtOlderOffset ?? [];

    /// <summary>At the newest offset, the stored events followed by more: only there, as further back the batches after it already hold what followed.</summary>
    private static bool ExtendsTail(TailOffset? tail, IncomingBatch upload) =>
        tail is { Segments: [.., var last] }
        && upload.StartOffset == tail.StartOffset
        && upload.Content.EventCount > last.EventCountEnd
        && upload.Fingerprints.Matches(upload.Content.PrefixSha256(last.EventCountEnd), last.Fingerprint);

    private static bool IsStored(IReadOnlyList<OffsetSegment> stored, IncomingBatch upload)
    {
        foreach (var segment in stored)
        {
            if (segment.EventCountEnd == upload.Content.EventCount) return upload.Fingerprints.Matches(upload.Content.Sha256(), segment.Fingerprint);
        }

        return false;
    }

    private static AcceptBatch Accept(PamSession session, IncomingBatch upload, int firstEventIndex, GapDetected? gap, Actor actor, DateTimeOffset now)
    {
        var content = upload.Content.Skip(firstEventIndex);
        var batch = new BatchUploaded(
            Sequence: session.BatchCount,
            StartOffset: upload.StartOffset,
            EndOffset: upload.EndOffset,
            FirstEventIndex: firstEventIndex,
            EventCount: content.EventCount,
            FirstEventAt: content.EarliestEventAt,
            LastEventAt: content.LatestEventAt,
            ContentFingerprint: upload.Fingerprints.Of(content.Sha256()),
            OffsetFingerprint: upload.Fingerprints.Of(upload.Content.Sha256()),
            PlaintextBytes: content.Canonical.Length,
            KeyId: "",
            UploadedBy: actor,
            UploadedAt: now);

        var activation = session.Status == SessionStatus.Starting ? new SessionActivated(now) : null;
        return new AcceptBatch(activation, gap, batch, content);
    }

    private static LateBatchRefused Late(IncomingBatch upload, Actor actor, DateTimeOffset now) =>
        new(upload.StartOffset, upload.EndOffset, upload.Fingerprints.Of(upload.Content.Sha256()), upload.Content.EventCount, actor, now);

    /// <summary>The conflict to record, or null when it repeats the last one recorded (a gateway sends a refused batch again on every tick).</summary>
    private static BatchConflictRejected? Conflict(PamSession session, IncomingBatch upload, string reason, Actor actor, DateTimeOffset now) =>
        Unrepeated(session, new BatchConflictRejected(upload.StartOffset, upload.EndOffset, reason, upload.Fingerprints.Of(upload.Content.Sha256()), upload.Content.EventCount, actor, now));

    public static BatchConflictRejected? Unrepeated(PamSession session, BatchConflictRejected conflict) =>
        session.LastConflict is { } last && last.IsRepeatedBy(conflict.StartOffset, conflict.RejectedFingerprint) ? null : conflict;

    /// <summary>The late upload to record, or null when it repeats the last one recorded.</summary>
    public static LateBatchRefused? Unrepeated(PamSession session, LateBatchRefused late) =>
        session.LastLateRefused is { } last && last.IsRepeatedBy(late.StartOffset, late.RefusedFingerprint) ? null : late;
}
