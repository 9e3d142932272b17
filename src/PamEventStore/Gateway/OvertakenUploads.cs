using Marten;
using PamEventStore.Crypto;
using PamEventStore.Recording;
using PamEventStore.Sessions;
using PamEventStore.Storage;
using PamEventStore.Viewing;

namespace PamEventStore.Gateway;

/// <summary>
/// An upload overtaken by its own longer retry (README, upload rule b): a request stalled past the
/// gateway's timeout, the gateway's next tick sent everything from the same offset, and that was stored
/// first. The stalled request then holds the first events of what is stored at its offset, which no
/// stored fingerprint shows (each covers the offset's events up to a batch's end), so what is stored
/// there is opened and compared. Anything that does not open or read as stored is left to the upload
/// rules, which record it as a conflict, as before.
/// </summary>
public static class OvertakenUploads
{
    /// <summary>Whether the upload's events are the first of the events stored at its offset. Runs on the session as its upload is decided, before anything is appended.</summary>
    /// <param name="storedAtOffset">The batch index's entries at the offset when the caller read them already (an older offset); otherwise read here.</param>
    public static async Task<bool> BeginWhatIsStoredAsync(
        IQuerySession db, RecordingCipher cipher, string orgId, Guid sessionId, PamSession session, IncomingBatch upload,
        IReadOnlyList<StoredSegment>? storedAtOffset, CancellationToken ct)
    {
        try
        {
            var stored = storedAtOffset ?? await RecordedBatch.StoredAtAsync(db, sessionId, upload.StartOffset, session.BatchCount, ct);
            if (stored.Count == 0 || stored.Any(s => s.StreamVersion is null)) return false;

            var events = await db.Events.FetchStreamAsync(sessionId, version: stored[^1].StreamVersion!.Value, fromVersion: stored[0].StreamVersion!.Value, token: ct);
            var pieces = new List<byte[]>(stored.Count);
            var eventCount = 0;
            foreach (var segment in stored)
            {
                // Each batch at the offset takes up where the one before it ended.
                if (events.FirstOrDefault(e => e.Version == segment.StreamVersion)?.Data is not BatchUploaded batch
                    || batch.Sequence != segment.Sequence || batch.StartOffset != upload.StartOffset || batch.FirstEventIndex != eventCount)
                {
                    return false;
                }

                var place = new BatchPlace(orgId, sessionId, batch.Sequence, batch.StartOffset);
                var (status, content) = await StoredRecording.OpenAsync(cipher, upload.Fingerprints, place, batch, ct);
                if (status != BatchReadStatus.Ok) return false;
                pieces.Add(content!);
                eventCount += batch.EventCount;
            }

            return RecordingParser.TryParseBatch(OneArray(pieces), out var storedContent, out _)
                   && storedContent.EventCount == eventCount
                   && upload.Fingerprints.Matches(storedContent.Sha256(), stored[^1].Segment.Fingerprint)
                   && BatchUploadRules.IsStoredPrefix(upload, storedContent);
        }
        catch (Exception e) when (e is not OperationCanceledException && !DatabaseFailures.IsFromDatabase(e))
        {
            // A stored event that no longer reads: the rules decide without it (a conflict is recorded).
            return false;
        }
    }

    /// <summary>Canonical arrays of consecutive events joined into one: <c>[a,b]</c> and <c>[c]</c> give <c>[a,b,c]</c>.</summary>
    private static byte[] OneArray(IReadOnlyList<byte[]> arrays)
    {
        var joined = new byte[arrays.Sum(a => a.Length - 1) + 1];
        var at = 0;
        foreach (var array in arrays)
        {
            joined[at] = at == 0 ? (byte)'[' : (byte)',';
            at++;
            array.AsSpan(1, array.Length - 2).CopyTo(joined.AsSpan(at));
            at += array.Length - 2;
        }

        joined[at] = (byte)']';
        return joined;
    }
}
