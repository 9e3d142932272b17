using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using PamEventStore.Crypto;
using PamEventStore.Gateway;
using PamEventStore.Http;
using PamEventStore.Security;
using PamEventStore.Sessions;
using PamEventStore.Storage;
using Wolverine.Http;

namespace PamEventStore.Viewing;

/// <summary>Live tails (configuration section <c>LiveTail</c>).</summary>
public sealed class LiveTailOptions
{
    public const string Section = "LiveTail";

    /// <summary>Tails a node serves at once; the next is answered 503 <c>busy</c>. A tail holds a connection, not a database connection, between reads.</summary>
    public int AtOnce { get; set; } = 256;

    /// <summary>Of those, the most one org's readers hold at once: no org's readers take every tail from the others.</summary>
    public int AtOncePerOrg { get; set; } = 64;

    /// <summary>How often a tail reads the store when this node stored nothing in its session meanwhile (another node may have).</summary>
    public TimeSpan Poll { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A comment line is sent after this long without an event, so proxies keep the connection.</summary>
    public TimeSpan KeepAlive { get; set; } = TimeSpan.FromSeconds(15);
}

/// <summary>
/// The node's turns for live tails (<see cref="LiveTailOptions.AtOnce"/>, at most
/// <see cref="LiveTailOptions.AtOncePerOrg"/> of them an org's): none is waited for.
/// </summary>
public sealed class LiveTailTurns(IOptions<LiveTailOptions> options)
{
    private readonly Turns _turns = new(options.Value.AtOnce, TimeSpan.Zero, 0);
    private readonly Lock _gate = new();
    private readonly HeldByKey _heldBy = new();

    public int AtOnce => _turns.AtOnce;

    public int AtOncePerOrg => options.Value.AtOncePerOrg;

    /// <summary>A turn, or null when the node's are all taken or <paramref name="orgId"/>'s share is.</summary>
    public async Task<IDisposable?> TakeAsync(string orgId, CancellationToken ct)
    {
        lock (_gate)
        {
            if (_heldBy.Of(orgId) >= options.Value.AtOncePerOrg) return null;
            _heldBy.Add(orgId, 1);
        }

        var turn = await _turns.TakeAsync(ct);
        var ofOrg = new OrgTurn(this, orgId, turn);
        if (turn is not null) return ofOrg;
        ofOrg.Dispose();
        return null;
    }

    private void GiveBack(string orgId)
    {
        lock (_gate) _heldBy.Remove(orgId, 1);
    }

    private sealed class OrgTurn(LiveTailTurns turns, string orgId, IDisposable? turn) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            turn?.Dispose();
            turns.GiveBack(orgId);
        }
    }
}

/// <summary>
/// <c>GET /api/v1/pam/sessions/{sessionId}/live[?from=N]</c>: the session as it is recorded, pushed as
/// server-sent events instead of polled page by page. Each stored batch is one <c>batch</c> event (its
/// <c>id</c> is the batch's sequence; <c>data</c> is <c>{sequence, batch, logs}</c>: its page entry and
/// its decrypted events, opened and checked as a log page opens them), from batch <c>from</c> (default:
/// the next one stored) or after the <c>Last-Event-ID</c> a reconnecting client sends. When the session
/// ends, an <c>end</c> event carries the session with its seal; the stream stays open for what the
/// grace window still takes (a final flush), then closes.
/// </summary>
public static class LiveTailEndpoint
{
    /// <summary>Batches read at once while a tail catches up.</summary>
    private const int Chunk = 100;

    [WolverineGet("/api/v1/pam/sessions/{sessionId}/live")]
    [Authorize(Policy = PamPolicies.Read)]
    public static async Task<IResult> Get(
        Guid sessionId, HttpRequest request, IQuerySession db, Caller caller, LiveTailTurns turns, RecordingCipher cipher,
        TimeProvider clock, IOptions<UploadOptions> options, CancellationToken ct)
    {
        var (from, problem) = ReadFrom(request);
        if (problem is not null) return problem.ToResult();

        // Authorised by the session's project before anything recorded is read, as a log page is (the
        // snapshot holds none of the recording).
        var readAt = clock.GetUtcNow();
        if (await db.LoadAsync<PamSession>(sessionId, ct) is not { } session || !caller.CanSeeProject(session.ProjectId))
        {
            return Problems.SessionNotFound(sessionId).ToResult();
        }

        // A tail that is over, with nothing left to send from where it stands: 204, which tells a browser's
        // EventSource to stop reconnecting (it reconnects after a stream closes, sending its Last-Event-ID).
        if (IsOver(session, readAt, options.Value.EndedSessionGrace) && (from ?? long.MaxValue) >= session.BatchCount + (session.Legacy is null ? 0 : 1))
        {
            return Results.NoContent();
        }

        // The org's keys open before the stream does (503 keys-unavailable, as a log page answers): once
        // it is open, a failure can only cut it, and a browser's EventSource reconnects for ever.
        await cipher.FingerprintAsync(caller.OrgId, ct);

        if (await turns.TakeAsync(caller.OrgId, ct) is not { } turn) return Problems.LiveTailsBusy(turns.AtOnce, turns.AtOncePerOrg, RetryAfterSeconds).ToResult();
        request.HttpContext.Response.RegisterForDispose(turn);
        return new LiveTail(caller.OrgId, sessionId, from);
    }

    private const int RetryAfterSeconds = 5;

    /// <summary>
    /// The longest an upload decided within the grace window may take to commit (a database command's
    /// timeout): a read that began this long after the window closed has seen every upload it took.
    /// </summary>
    private static readonly TimeSpan CommitAllowance = TimeSpan.FromSeconds(30);

    /// <summary>Nothing more can be stored in the session that a read begun at <paramref name="readAt"/> did not see.</summary>
    private static bool IsOver(PamSession session, DateTimeOffset readAt, TimeSpan grace) =>
        session.Status == SessionStatus.Ended && readAt > session.EndedAt + grace + CommitAllowance;

    /// <summary><c>Last-Event-ID</c> (a reconnect: the batch after it) over <c>from</c>; null for "from the next batch stored".</summary>
    public static (long? From, ProblemDetails? Problem) ReadFrom(HttpRequest request)
    {
        if (request.Headers["Last-Event-ID"] is { Count: > 0 } lastId)
        {
            return WholeNumber.TryParse(lastId, out var last) && last < long.MaxValue
                ? (last + 1, null)
                : (null, Problems.InvalidRequest("Last-Event-ID must be the sequence of the last batch received."));
        }

        return WholeNumber.TryRead(request.Query, "from", out var from)
            ? (from, null)
            : (null, Problems.InvalidRequest("from must be a non-negative integer: the sequence of the first batch to send."));
    }

    /// <summary>The stream itself, written until the session is over or the client goes away.</summary>
    private sealed record LiveTail(string OrgId, Guid SessionId, long? From) : IResult
    {
        public async Task ExecuteAsync(HttpContext http)
        {
            var services = http.RequestServices;
            var options = services.GetRequiredService<IOptions<LiveTailOptions>>().Value;
            var grace = services.GetRequiredService<IOptions<UploadOptions>>().Value.EndedSessionGrace;
            var pages = services.GetRequiredService<IOptions<LogPageOptions>>().Value;
            var pageBytes = pages.MaxBytes;
            var signals = services.GetRequiredService<SessionSignals>();
            var pageTurns = services.GetRequiredService<PageTurns>();
            var cipher = services.GetRequiredService<RecordingCipher>();
            var store = services.GetRequiredService<IDocumentStore>();
            var clock = services.GetRequiredService<TimeProvider>();
            // The session in the end event as every answer writes it.
            var json = services.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;
            var ct = http.RequestAborted;

            http.Response.StatusCode = StatusCodes.Status200OK;
            http.Response.ContentType = "text/event-stream; charset=utf-8";
            http.Response.Headers.CacheControl = "no-store";
            http.Response.Headers["X-Accel-Buffering"] = "no";
            var output = http.Response.BodyWriter;
            var lastWrite = clock.GetTimestamp();

            // Its batches are written holding a page turn: a client that stops taking them is cut off at a
            // page's pace, not Kestrel's own (240 B/s), which would keep the turn from every page for hours.
            // Kestrel measures only writes in flight, so a tail waiting for the next batch is not cut.
            KestrelPace.OfResponse(http, pages.MinBytesPerSecond, pages.Grace);

            // One event: its data written in parts straight into the response, on one line as SSE data must be.
            async Task<bool> SendAsync(string? id, string name, params ReadOnlyMemory<byte>[] data)
            {
                if (id is not null) output.Write(Encoding.UTF8.GetBytes($"id: {id}\n"));
                output.Write(Encoding.UTF8.GetBytes($"event: {name}\ndata: "));
                foreach (var part in data) output.Write(part.Span);
                output.Write("\n\n"u8);
                lastWrite = clock.GetTimestamp();
                return !(await output.FlushAsync(ct)).IsCompleted;
            }

            // {"sequence", "batch": its page entry, "logs": its events}, the events as they were opened, uncopied;
            // the event's id is the batch's sequence (the legacy recording's is the one after the batches).
            Task<bool> SendBatchAsync(OpenedBatch opened) => SendAsync(
                opened.Entry!.Sequence.ToString(CultureInfo.InvariantCulture), "batch",
                Encoding.UTF8.GetBytes($"{{\"sequence\":{opened.Entry.Sequence.ToString(CultureInfo.InvariantCulture)},\"batch\":"),
                JsonSerializer.SerializeToUtf8Bytes(opened.Entry, LogPageJson.Default.LogPageBatch),
                ",\"logs\":"u8.ToArray(),
                opened.Content ?? "[]"u8.ToArray(),
                "}"u8.ToArray());

            try
            {
                await output.FlushAsync(ct);
                var next = From;
                var (endSent, legacySent) = (false, false);
                while (true)
                {
                    // Listening before reading: what this node commits meanwhile wakes the wait below.
                    using var listener = signals.Listen(OrgId, SessionId);
                    var readAt = clock.GetUtcNow();
                    PamSession? session;
                    await using (var db = store.QuerySession(OrgId)) session = await db.LoadAsync<PamSession>(SessionId, ct);
                    if (session is null) return;

                    // Without a place to start from: the next batch stored, where the session stands now.
                    var position = next ??= session.BatchCount;
                    var legacyDue = session.Legacy is not null && !legacySent && position == session.BatchCount;
                    if (position < session.BatchCount || legacyDue)
                    {
                        // Reading recorded content holds what a log page holds: it takes a page turn as a page
                        // does, and gives it back before it waits. With every turn taken, it tries again later.
                        using var turn = await pageTurns.TakeAsync(ct);
                        if (turn is null)
                        {
                            await listener.WaitAsync(options.Poll, ct);
                            continue;
                        }

                        await using var db = store.QuerySession(OrgId);
                        if (position < session.BatchCount)
                        {
                            await using var stored = await StoredPage.ReadAsync(
                                db, SessionId, RecordedBatch.IdFor(SessionId, position), RecordedBatch.IdFor(SessionId, position + Chunk - 1), Chunk, ct);
                            var end = Math.Min(position + Chunk, stored.Session?.BatchCount ?? session.BatchCount);
                            var extent = new PageExtent(OrgId, SessionId, position, end);
                            var pageEnd = new PageEnd(hasMore: false, (int)(end - position));
                            var opened = await cipher.FingerprintAsync(OrgId, ct) is { } fingerprint
                                ? GetSessionLogsEndpoint.OpenBatchesAsync(stored, cipher, fingerprint, extent, pageBytes, pageEnd, ct)
                                : extent.AllMissing().ToAsyncEnumerable();
                            await foreach (var batch in opened)
                            {
                                if (!await SendBatchAsync(batch)) return;
                            }

                            next = position + pageEnd.BatchCount;
                        }
                        else
                        {
                            // The legacy recording is one more batch after the others (as on the log pages);
                            // nothing is stored after it.
                            var legacy = await GetSessionLogsEndpoint.OpenLegacyAsync(db, cipher, OrgId, SessionId, session.BatchCount, session.Legacy!, ct);
                            if (!await SendBatchAsync(legacy)) return;
                            legacySent = true;
                        }

                        continue;
                    }

                    if (session.Status == SessionStatus.Ended)
                    {
                        if (!endSent && !await SendAsync(null, "end", JsonSerializer.SerializeToUtf8Bytes(SessionView.Envelope(session), json))) return;
                        endSent = true;
                        if (legacySent || IsOver(session, readAt, grace)) return;
                    }

                    if (clock.GetElapsedTime(lastWrite) >= options.KeepAlive)
                    {
                        output.Write(": keep-alive\n\n"u8);
                        lastWrite = clock.GetTimestamp();
                        if ((await output.FlushAsync(ct)).IsCompleted) return;
                    }

                    await listener.WaitAsync(options.Poll, ct);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // The client went away.
            }
            catch (Exception failure)
            {
                // Events are already out: no problem answer can follow them. Cut the connection, so the
                // client sees a broken stream and reconnects with its Last-Event-ID.
                services.GetService<ILogger<LiveTail>>()?.LogError(failure, "A live tail of session {SessionId} failed; the connection is cut", SessionId);
                http.Abort();
            }
        }
    }
}
