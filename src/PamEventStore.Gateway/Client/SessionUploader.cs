using System.Text.Json;
using PamEventStore.Gateway.Recording;

namespace PamEventStore.Gateway.Client;

/// <summary>
/// A gateway's upload of one session: flushes send what the recording file holds past the
/// acknowledged offset, with the Infisical gateway's behaviour on errors (keep the offset, retry next
/// time; a 404 means an old platform: upload everything through the legacy endpoint at the end).
/// </summary>
public sealed class SessionUploader(PamApiClient client, Guid sessionId, string gatewayToken, bool sendEndOffset, int maxBatchBytes = SessionUploader.DefaultMaxBatchBytes)
{
    /// <summary>The service's default body limit for a batch.</summary>
    public const int DefaultMaxBatchBytes = 512 * 1024;

    public Guid SessionId => sessionId;

    public RecordingFile File { get; } = new();

    public bool LegacyMode { get; private set; }

    /// <summary>
    /// The newest head of the session's chain the service answered: what this gateway holds of it outside
    /// the store. It stops advancing once an answer went back (<see cref="ChainWentBack"/>), so it keeps
    /// the head from before the cut, which is what shows the cut.
    /// </summary>
    public KeptHead? LastHead { get; private set; }

    /// <summary>
    /// An answer showed the stored chain is not the one answered before: shorter than a head answered
    /// before, the same length with another link, no longer after a stored batch, or a stored batch numbered
    /// no higher than one stored before. Only a cut or a rewrite of the session's stored events does that
    /// (a cut followed by an upload can answer a longer chain: the batch numbers show it). <see cref="LastHead"/> shows it.
    /// </summary>
    public bool ChainWentBack { get; private set; }

    private long? _lastSequence;

    /// <param name="head">Where the chain stands, as an answer gave it.</param>
    /// <param name="storedSequence">
    /// The number of the batch the answer stored, when it stored one: then the chain must be longer than
    /// before and the number higher. An end may append nothing (the session had ended already), never less.
    /// </param>
    private void Keep(KeptHead? head, long? storedSequence)
    {
        if (head is null || ChainWentBack) return;
        if (LastHead is { } last
            && (head.Length < last.Length
                || (head.Length == last.Length && (storedSequence is not null || head.Head != last.Head))
                || (storedSequence is { } stored && _lastSequence is { } before && stored <= before)))
        {
            ChainWentBack = true;
            return;
        }

        if (head.Length > (LastHead?.Length ?? 0)) LastHead = head;
        if (storedSequence is not null) _lastSequence = storedSequence;
    }

    /// <returns>The service's answer, or null when there was nothing to send.</returns>
    public async Task<UploadResult?> FlushAsync(CancellationToken ct)
    {
        if (LegacyMode || File.NextBatch(maxBatchBytes) is not { } batch) return null;

        UploadResult result;
        try
        {
            result = await client.UploadBatchAsync(gatewayToken, sessionId, batch.StartOffset, sendEndOffset ? batch.EndOffset : null, batch.Body, ct);
        }
        catch (Exception e) when (e is HttpRequestException || (e is TaskCanceledException && !ct.IsCancellationRequested))
        {
            // A dropped connection or a timed-out request is a failed upload like any other: the offset
            // is kept and the next tick sends it again (it may have been stored: then it is a duplicate).
            return UploadResult.NoAnswer(e.Message);
        }

        if (result.Succeeded)
        {
            File.Acknowledge(batch);
            Keep(result.Head, result.Duplicate ? null : result.Sequence);
        }
        else if (result.MeansOldPlatform)
        {
            LegacyMode = true;
        }

        return result;
    }

    /// <summary>
    /// The gateway's cleanup: everything recorded is uploaded (as many batches as it takes, or the legacy
    /// upload), then the session is ended. Should an upload fail in a way that may clear (no answer, a
    /// timeout, the service's 503), the session is not ended: as an Infisical gateway keeps its recording
    /// file for a later try, the recording stays here to be sent again, and a session is never ended
    /// without it. An upload the service refused for good (a closed session, a conflict) would be refused
    /// again on every try: the session is ended without it, and the answer says so.
    /// </summary>
    public async Task<SessionEnd> EndAsync(string reason, CancellationToken ct)
    {
        UploadResult? refused = null;
        while (!LegacyMode && File.HasPending)
        {
            var result = await FlushAsync(ct);
            if (result is null || result.Succeeded || result.MeansOldPlatform) continue;
            if (!result.RefusedForGood) return new SessionEnd(null, result);
            refused = result;
            break;
        }

        // What was never acknowledged: the whole recording when the first upload met the 404, as an
        // Infisical gateway sends it. After batches were stored (a route gone mid-session, which this
        // service never does), an Infisical gateway sends its whole file again; this client does not, so
        // that what was stored is not stored twice.
        if (refused is null && LegacyMode && File.NextBatch() is { } everything)
        {
            UploadResult legacy;
            try
            {
                legacy = await client.UploadLegacyLogsAsync(gatewayToken, sessionId, everything.Body, ct);
            }
            catch (Exception e) when (e is HttpRequestException || (e is TaskCanceledException && !ct.IsCancellationRequested))
            {
                legacy = UploadResult.NoAnswer(e.Message);
            }

            if (legacy.Succeeded) File.Acknowledge(everything);
            else if (legacy.RefusedForGood) refused = legacy;
            else return new SessionEnd(null, legacy);
        }

        // The end answers the chain as it stands, and the seal, which may be older than a final flush
        // stored after another's end.
        JsonElement session;
        try
        {
            session = await client.EndSessionAsync(gatewayToken, sessionId, reason, ct);
        }
        catch (Exception e) when (e is HttpRequestException || (e is TaskCanceledException && !ct.IsCancellationRequested))
        {
            // The end itself failed (the service was away, or refused it): the recording is stored, the session not ended.
            return new SessionEnd(null, new UploadResult((e as HttpRequestException)?.StatusCode ?? 0, false, null, null, e.Message)) { Refused = refused };
        }

        Keep(KeptHead.HeadOf(session), storedSequence: null);
        return new SessionEnd(KeptHead.SealOf(session), null) { Refused = refused };
    }
}

/// <summary>How ending a session went: its seal once ended; otherwise what failed (an upload, or the end itself), and the session was left open.</summary>
public sealed record SessionEnd(KeptHead? Seal, UploadResult? Failed)
{
    public bool Ended => Failed is null;

    /// <summary>An upload of the end the service refused for good: the session was ended without what it held.</summary>
    public UploadResult? Refused { get; init; }
}
