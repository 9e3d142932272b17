using PamEventStore.Crypto;
using PamEventStore.Recording;

namespace PamEventStore.Sessions;

/// <summary>Store <see cref="Logs"/> (ciphertext still to be sealed) after the events before it.</summary>
public sealed record AcceptLegacyLogs(SessionActivated? Activation, LegacyLogsUploaded Logs) : UploadDecision
{
    public IEnumerable<SessionEvent> Events(LegacyLogsUploaded sealedLogs)
    {
        if (Activation is not null) yield return Activation;
        yield return sealedLogs;
    }
}

/// <summary>
/// The legacy bulk upload is written once. Infisical refuses any second upload with a 400, which its
/// gateway retries every five minutes forever; here the same content again is a harmless duplicate
/// and only different content is refused.
/// </summary>
public static class LegacyLogsRules
{
    public static UploadDecision Decide(
        PamSession session, RecordingBatch logs, ContentFingerprint fingerprints, Actor actor, DateTimeOffset now, TimeSpan endedSessionGrace)
    {
        // Refusals are recorded as a batch's are: what was sent, by whom. The whole recording has no
        // offsets of its own; it starts where the gateway's recording starts.
        var sent = fingerprints.Of(logs.Sha256());
        if (session.Legacy is { } stored)
        {
            return fingerprints.Matches(logs.Sha256(), stored.Fingerprint)
                ? new DuplicateBatch()
                : new RejectBatch(Rejection.BatchConflict, BatchUploadRules.Unrepeated(session, new BatchConflictRejected(0, null, "legacy-logs-differ", sent, logs.EventCount, actor, now)));
        }

        if (session.Status == SessionStatus.Ended && now > session.EndedAt + endedSessionGrace)
        {
            // Recorded as a late batch is (an empty recording loses nothing), once while the same content keeps coming.
            var late = logs.EventCount == 0 ? null : BatchUploadRules.Unrepeated(session, new LateBatchRefused(0, null, sent, logs.EventCount, actor, now));
            return new RejectBatch(Rejection.SessionClosed, null, late);
        }

        var uploaded = new LegacyLogsUploaded(
            EventCount: logs.EventCount,
            FirstEventAt: logs.EventCount == 0 ? null : logs.EarliestEventAt,
            LastEventAt: logs.EventCount == 0 ? null : logs.LatestEventAt,
            ContentFingerprint: sent,
            PlaintextBytes: logs.Canonical.Length,
            KeyId: "",
            UploadedBy: actor,
            UploadedAt: now);
        var activation = session.Status == SessionStatus.Starting ? new SessionActivated(now) : null;
        return new AcceptLegacyLogs(activation, uploaded);
    }
}
