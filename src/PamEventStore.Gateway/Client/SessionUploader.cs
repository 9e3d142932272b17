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
    /// An answer put the chain shorter than a head answered before (or a stored batch no longer): events of
    /// the session were removed from the store since, as only a cut makes a chain shorter. <see cref="LastHead"/> shows it.
    /// </summary>
    public bool ChainWentBack { get; private set; }

    /// <param name="head">Where the chain stands, as an answer gave it.</param>
    /// <param name="appended">
    /// The answer is to something that lengthened the chain (a stored batch): then even the same length as
    /// before is a cut. An end may append nothing (the session had ended already), never less.
    /// </param>
    private void Keep(KeptHead? head, bool appended)
    {
        if (head is null || ChainWentBack) return;
        if (LastHead is { } last && (head.Length < last.Length || (appended && head.Length == last.Length))) ChainWentBack = true;
        else if (head.Length > (LastHead?.Length ?? 0)) LastHead = head;
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
            Keep(result.Head, appended: true);
        }
        else if (result.MeansOldPlatform)
        {
            LegacyMode = true;
        }

        return result;
    }

    /// <summary>The gateway's cleanup: a final flush (or the legacy upload), then end the session.</summary>
    /// <returns>The session's seal, as the end answered it (null from a service without one).</returns>
    public async Task<KeptHead?> EndAsync(string reason, CancellationToken ct)
    {
        await FlushAsync(ct);
        if (LegacyMode && File.NextBatch() is { } everything) await client.UploadLegacyLogsAsync(gatewayToken, sessionId, everything.Body, ct);
        // The end answers the chain as it stands, and the seal, which may be older than a final flush
        // stored after another's end.
        var session = await client.EndSessionAsync(gatewayToken, sessionId, reason, ct);
        Keep(KeptHead.HeadOf(session), appended: false);
        return KeptHead.SealOf(session);
    }
}
