using System.Runtime.CompilerServices;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using PamEventStore.Crypto;
using PamEventStore.Http;
using PamEventStore.Security;
using PamEventStore.Sessions;
using PamEventStore.Storage;
using Wolverine.Http;

namespace PamEventStore.Viewing;

/// <summary>Log pages (configuration section <c>LogPages</c>).</summary>
public sealed class LogPageOptions
{
    public const string Section = "LogPages";

    /// <summary>
    /// At most this much content in one page, counted as it is read back (decompressed; one batch always fits, whatever its size): the
    /// page ends before the batch that would take it over, with fewer batches than asked (the contract
    /// allows it: the caller follows batchCount and hasMore).
    /// </summary>
    public long MaxBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>
    /// Pages a node reads and writes at once, each holding up to <see cref="MaxBytes"/> until its
    /// client has taken it (the legacy recording, the whole of it). Others wait for a turn.
    /// </summary>
    public int AtOnce { get; set; } = Math.Max(4, 2 * Environment.ProcessorCount);

    /// <summary>How long a page waits for a turn before it is answered 503 <c>busy</c>.</summary>
    public TimeSpan Wait { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Pages that may wait for a turn at once: four for each turn. Past them a page is answered 503 at once.</summary>
    public int Waiting => 4 * AtOnce;

    /// <summary>
    /// Once a page holds a turn, its client must take it at least this fast after <see cref="Grace"/>
    /// (over HTTP/1.x, as Kestrel measures it): one that stalls or trickles is cut off and the turn goes on.
    /// </summary>
    public int MinBytesPerSecond { get; set; } = 32 * 1024;

    public TimeSpan Grace { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>Which batches a log page covers: Infisical's contract, where both numbers count batches.</summary>
public sealed record LogPageRequest(long Offset, int Limit)
{
    public const int DefaultLimit = 20;
    public const int MaxLimit = 100;

    public static (LogPageRequest? Page, ProblemDetails? Problem) From(IQueryCollection query)
    {
        if (!WholeNumber.TryRead(query, "offset", out var offset))
        {
            return (null, Problems.InvalidRequest("offset must be a non-negative integer: the number of batches to skip."));
        }

        if (!WholeNumber.TryRead(query, "limit", out var limit) || limit is < 1 or > MaxLimit)
        {
            return (null, Problems.InvalidRequest($"limit must be an integer from 1 to {MaxLimit}: the number of batches in the page."));
        }

        return (new LogPageRequest(offset ?? 0, (int)(limit ?? DefaultLimit)), null);
    }
}

/// <summary>
/// <c>GET /api/v1/pam/sessions/{sessionId}/logs?offset=0&amp;limit=20</c>: the decrypted events of
/// <c>limit</c> batches from batch <c>offset</c>, as <c>{logs, hasMore, batchCount}</c> (Infisical's
/// contract; the UI advances its cursor by batchCount) plus <c>batches</c>, one entry per batch with
/// its offsets, fingerprint and whether it opened. A page is found by primary key and stream version,
/// never by SQL OFFSET, so it costs the same deep in a long session as at its start.
/// </summary>
public static class GetSessionLogsEndpoint
{
    [WolverineGet("/api/v1/pam/sessions/{sessionId}/logs")]
    [Authorize(Policy = PamPolicies.Read)]
    public static async Task<IResult> Get(
        Guid sessionId, HttpRequest request, IQuerySession db, Caller caller, RecordingCipher cipher, SessionBindings sessions,
        PageTurns turns, IOptions<LogPageOptions> options, CancellationToken ct)
    {
        var (page, problem) = LogPageRequest.From(request.Query);
        if (page is null) return problem!.ToResult();

        // The caller is authorised before anything recorded is read, by the session's project. It
        // never changes, so after this node's first request for a session the check needs no query.
        if (await sessions.OfAsync(db, caller.OrgId, sessionId, ct) is not { } binding || !caller.CanSeeProject(binding.ProjectId))
        {
            return Problems.SessionNotFound(sessionId).ToResult();
        }

        // Held until the page is written (the response disposes it): a page holds its content until
        // its client has taken it, so a node serves a few at a time instead of every one that arrives.
        if (await turns.TakeAsync(ct) is not { } turn) return Problems.PagesBusy(turns.AtOnce, RetryAfterSeconds).ToResult();
        request.HttpContext.Response.RegisterForDispose(turn);
        KestrelPace.OfResponse(request.HttpContext, options.Value.MinBytesPerSecond, options.Value.Grace);

        var fingerprint = await cipher.FingerprintAsync(caller.OrgId, ct);

        // One round trip for the session and the page's rows, from its first batch to its last:
        // found through their index documents by primary key, so a page costs the same anywhere.
        var stored = await StoredPage.ReadAsync(
            db, sessionId, RecordedBatch.IdFor(sessionId, page.Offset), RecordedBatch.IdFor(sessionId, page.Offset + page.Limit - 1), page.Limit, ct);

        // Released when its rows are read, or with the response at the latest, whatever happens in between.
        request.HttpContext.Response.RegisterForDisposeAsync(stored);
        if (stored.Session is not { } session || (session.ProjectId != binding.ProjectId && !caller.CanSeeProject(session.ProjectId)))
        {
            await stored.DisposeAsync();
            return Problems.SessionNotFound(sessionId).ToResult();
        }

        // The legacy upload, when there is one, reads as one more page after the batches (the whole
        // recording on the first page when it is all there is, batchCount 0 as Infisical answers).
        if (page.Offset >= session.BatchCount)
        {
            await stored.DisposeAsync();
            return session.Legacy is { } legacy && page.Offset == session.BatchCount
                ? LogPage.Of([await OpenLegacyAsync(db, cipher, caller.OrgId, sessionId, session.BatchCount, legacy, ct)], hasMore: false, batchCount: session.BatchCount == 0 ? 0 : 1)
                : LogPage.Of([], hasMore: false, batchCount: 0);
        }

        // The session as this page read it decides the page's extent: batches committed after it
        // wait for the next page. Its byte bound may end it earlier, once its rows are read.
        var end = Math.Min(page.Offset + page.Limit, session.BatchCount);
        var extent = new PageExtent(caller.OrgId, sessionId, page.Offset, end);
        var pageEnd = new PageEnd(end < session.BatchCount || session.Legacy is not null, (int)(end - page.Offset));
        if (fingerprint is null)
        {
            // The org has never recorded anything (no fingerprint key): nothing here can open.
            await stored.DisposeAsync();
            return new LogPage(extent.AllMissing().ToAsyncEnumerable(), pageEnd);
        }

        // The page's rows are read, opened and written while the response goes out; the page owns them from here.
        return new LogPage(OpenBatchesAsync(stored, cipher, fingerprint, extent, options.Value.MaxBytes, pageEnd, ct), pageEnd);
    }

    /// <summary>Seconds a page turned away is asked to wait.</summary>
    private const int RetryAfterSeconds = 1;

    /// <summary>
    /// Reads the page's events in stream order and opens each batch as it arrives. A sequence without
    /// its event (a removed or unreadable row) reads as missing where it belongs, and a row moved
    /// ahead of its place opens only as the batch it was sealed for, once: what it displaced reads as missing.
    /// </summary>
    internal static async IAsyncEnumerable<OpenedBatch> OpenBatchesAsync(
        StoredPage stored, RecordingCipher cipher, ContentFingerprint fingerprint, PageExtent page, long maxBytes, PageEnd pageEnd,
        [EnumeratorCancellation] CancellationToken ct)
    {
        var next = page.Offset;
        await foreach (var batch in stored.BatchesAsync(page.Offset, page.End, maxBytes, ct))
        {
            if (batch.Sequence < next) continue;
            foreach (var missing in page.Missing(next, batch.Sequence)) yield return missing;

            var (status, content) = await StoredRecording.OpenAsync(
                cipher, fingerprint, new BatchPlace(page.OrgId, page.SessionId, batch.Sequence, batch.StartOffset), batch, ct);
            yield return new OpenedBatch(LogPageBatch.From(batch.Sequence, batch, status), content);
            next = batch.Sequence + 1;
        }

        // Cut short by its byte bound: the page ends where its rows stopped, after at least one of its
        // batches (StoredPage counts only the rows the page gives), and the next page begins there.
        var end = stored.CutAt ?? page.End;
        foreach (var missing in page.Missing(next, end)) yield return missing;
        if (end < page.End) pageEnd.CutShort((int)(end - page.Offset));
    }

    /// <summary>
    /// The legacy upload, with an entry in <c>batches</c> like any batch: one that does not open, or
    /// whose event is gone, is reported there, never read as a session without a recording.
    /// </summary>
    internal static async Task<OpenedBatch> OpenLegacyAsync(
        IQuerySession db, RecordingCipher cipher, string orgId, Guid sessionId, long sequence, LegacyRecording legacy, CancellationToken ct)
    {
        var events = await db.Events.FetchStreamAsync(sessionId, version: legacy.StreamVersion, fromVersion: legacy.StreamVersion, token: ct);
        if (events.SingleOrDefault()?.Data is not LegacyLogsUploaded stored) return new OpenedBatch(LogPageBatch.Missing(sequence) with { Legacy = true }, null);
        if (await cipher.FingerprintAsync(orgId, ct) is not { } fingerprint) return new OpenedBatch(LogPageBatch.OfLegacy(sequence, stored, BatchReadStatus.Undecryptable), null);

        var (status, content) = await StoredRecording.OpenAsync(cipher, fingerprint, new LegacyLogsPlace(orgId, sessionId), stored, ct);
        return new OpenedBatch(LogPageBatch.OfLegacy(sequence, stored, status), content);
    }
}
