using System.Globalization;
using Microsoft.AspNetCore.Mvc;
using PamEventStore.Recording;
using PamEventStore.Sessions;

namespace PamEventStore.Http;

/// <summary>
/// Every error this service answers, as RFC 7807 problem details with a stable <c>type</c>
/// (<c>urn:pam-event-store:problem:&lt;slug&gt;</c>) that clients can branch on. The detail never
/// echoes recorded content.
/// </summary>
public static class Problems
{
    public const string TypePrefix = "urn:pam-event-store:problem:";

    public static ProblemDetails Create(int status, string slug, string title, string detail, IDictionary<string, object?>? extensions = null)
    {
        var problem = new ProblemDetails { Status = status, Type = TypePrefix + slug, Title = title, Detail = detail };
        if (extensions is not null)
        {
            foreach (var (key, value) in extensions) problem.Extensions[key] = value;
        }

        return problem;
    }

    /// <summary>The extension of a problem that asks the caller to try again later, in seconds; answered with a <c>Retry-After</c> header too.</summary>
    public const string RetryAfter = "retryAfter";

    public static IResult ToResult(this ProblemDetails problem) =>
        problem.Extensions.TryGetValue(RetryAfter, out var seconds) && seconds is int retryAfter
            ? new RetryLaterResult(Results.Problem(problem), retryAfter)
            : Results.Problem(problem);

    private sealed class RetryLaterResult(IResult problem, int seconds) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
            return problem.ExecuteAsync(httpContext);
        }
    }

    public static ProblemDetails InvalidRequest(string detail) =>
        Create(400, "invalid-request", "The request is not valid", detail);

    public static ProblemDetails InvalidRecording(RecordingError error) =>
        Create(400, "invalid-recording", "The recorded events are not valid", error.Message,
            new Dictionary<string, object?> { ["index"] = error.Index, ["field"] = error.Field });

    public static ProblemDetails UnsupportedMediaType(string? contentType, string accepted = "application/octet-stream or application/json") =>
        Create(415, "unsupported-media-type", "Unsupported content type", $"Send {accepted}, not '{contentType}'.");

    public static ProblemDetails UnsupportedContentEncoding(string encoding) =>
        Create(415, "unsupported-media-type", "Unsupported content encoding", $"Send the body as it is, without a Content-Encoding; '{encoding}' is not read.");

    /// <summary>A body that arrived slower than its endpoint requires: nothing of it was stored.</summary>
    public static ProblemDetails BodyTooSlow(string detail) =>
        Create(408, "request-timeout", "The request body arrived too slowly", detail);

    public static ProblemDetails PayloadTooLarge(long limit) =>
        Create(413, "payload-too-large", "The request body is too large",
            $"The body exceeds the limit of {limit} bytes. Upload smaller batches.",
            new Dictionary<string, object?> { ["limit"] = limit });

    /// <summary>A body past the server's own limit, on an endpoint that sets none of its own (or before it could).</summary>
    public static ProblemDetails BodyOverServerLimit(long? limit) =>
        Create(413, "payload-too-large", "The request body is too large",
            limit is { } bytes ? $"The body exceeds the server's limit of {bytes} bytes." : "The body exceeds the server's limit.",
            new Dictionary<string, object?> { ["limit"] = limit });

    /// <summary>What a node answers when it already holds its limit of uploads: nothing was stored, send it again later.</summary>
    public static ProblemDetails Busy(long limit, int retryAfterSeconds) =>
        Create(503, "busy", "The service is busy",
            $"This node already holds its limit of {limit} bytes of uploads being stored; this batch was not stored. Send it again from the same offset in {retryAfterSeconds} s or later.",
            new Dictionary<string, object?> { ["limit"] = limit, [RetryAfter] = retryAfterSeconds });

    /// <summary>The calling gateway's uploads already hold its share of the node's limit (<c>Uploads:MaxBytesInFlightPerGateway</c>).</summary>
    public static ProblemDetails GatewayBusy(long gatewayLimit, int retryAfterSeconds) =>
        Create(503, "busy", "The service is busy",
            $"This gateway's uploads already hold its share of {gatewayLimit} bytes of this node's uploads being stored; this batch was not stored. Send it again from the same offset in {retryAfterSeconds} s or later.",
            new Dictionary<string, object?> { ["gatewayLimit"] = gatewayLimit, [RetryAfter] = retryAfterSeconds });

    public static ProblemDetails LegacyLogsBusy(int turns, int retryAfterSeconds) =>
        Create(503, "busy", "The service is busy",
            $"This node is already storing {turns} legacy uploads, its limit at once, and no turn came free for this one in time (or as many as may wait already did); this upload was not stored. Send it again in {retryAfterSeconds} s or later.",
            new Dictionary<string, object?> { ["legacyUploadsAtOnce"] = turns, [RetryAfter] = retryAfterSeconds });

    public static ProblemDetails PagesBusy(int turns, int retryAfterSeconds) =>
        Create(503, "busy", "The service is busy",
            $"This node is already serving {turns} log pages, its limit at once, and no turn came free for this one in time (or as many as may wait already did). Ask for it again in {retryAfterSeconds} s or later.",
            new Dictionary<string, object?> { ["pagesAtOnce"] = turns, [RetryAfter] = retryAfterSeconds });

    /// <summary>The node already serves as many live tails as it may: poll the log pages meanwhile, or come back later.</summary>
    public static ProblemDetails LiveTailsBusy(int atOnce, int atOncePerOrg, int retryAfterSeconds) =>
        Create(503, "busy", "The node is busy",
            $"This node already serves {atOnce} live tails, or {atOncePerOrg} of your organisation's. Read the log pages meanwhile, or try again in {retryAfterSeconds} s.",
            new Dictionary<string, object?> { ["liveTailsAtOnce"] = atOnce, ["liveTailsAtOncePerOrg"] = atOncePerOrg, [RetryAfter] = retryAfterSeconds });

    /// <summary>
    /// PostgreSQL cannot be reached, or the connection failed mid-request: send the request again later.
    /// Should the connection have failed just after a commit, the request was stored, and sending it again
    /// is answered as a repeat (uploads as duplicates, a created session with 200, an end as idempotent).
    /// </summary>
    public static ProblemDetails DatabaseUnavailable(int retryAfterSeconds) =>
        Create(503, "database-unavailable", "Database unavailable",
            $"The service cannot use PostgreSQL now: it cannot be reached, does not answer in time, or takes no writes (read-only, or out of disk or connections). Send the request again in {retryAfterSeconds} s or later.",
            new Dictionary<string, object?> { [RetryAfter] = retryAfterSeconds });

    /// <summary>
    /// The org's keys do not open on this node (a master key missing from its configuration, or the org's
    /// key ring altered): nothing was stored or read. The detail says what an operator must look at, and
    /// nothing of the keys themselves.
    /// </summary>
    public static ProblemDetails KeysUnavailable(int retryAfterSeconds) =>
        Create(503, "keys-unavailable", "The org's keys do not open",
            "The org's encryption keys do not open on this node: a master key may be missing from its configuration, or the org's key ring was altered. Nothing was stored or read; the node's log says which key.",
            new Dictionary<string, object?> { [RetryAfter] = retryAfterSeconds });

    /// <summary>Another request or node held the session's stream for longer than the service waits for it: nothing was stored.</summary>
    public static ProblemDetails SessionLocked(int retryAfterSeconds) =>
        Create(503, "session-locked", "The session is busy",
            $"Another request or node held the session for longer than the service waits; nothing was stored. Send the request again in {retryAfterSeconds} s or later.",
            new Dictionary<string, object?> { [RetryAfter] = retryAfterSeconds });

    public static ProblemDetails Unauthorized(string detail) =>
        Create(401, "unauthorized", "Authentication required", detail);

    public static ProblemDetails Forbidden(string detail) =>
        Create(403, "forbidden", "Not allowed", detail);

    public static ProblemDetails GatewayMismatch(Guid sessionId) =>
        Create(403, "gateway-mismatch", "Not this session's gateway",
            $"Session {sessionId} accepts recordings only from the gateway it was opened through.");

    public static ProblemDetails SessionNotFound(Guid sessionId) =>
        Create(404, "session-not-found", "Session not found", $"There is no session {sessionId} in your organisation.");

    public static ProblemDetails SessionNotFound(string rawSessionId) =>
        Create(404, "session-not-found", "Session not found", $"'{rawSessionId}' is not a session id: a UUID written as the service writes it, 36 characters of lowercase hex digits and hyphens.");

    public static ProblemDetails RouteNotFound(string path) =>
        Create(404, "route-not-found", "No such endpoint", $"Nothing is served at {path}.");

    public static ProblemDetails SessionExists(Guid sessionId) =>
        Create(409, "session-exists", "The session already exists with other details",
            $"Session {sessionId} was already created with a different body; it is not changed.");

    /// <summary>The session's stored state does not read (<see cref="Storage.UnreadableSessionException"/>): nothing is decided or shown from it.</summary>
    public static ProblemDetails SessionUnreadable(string sessionId) =>
        Create(409, "session-unreadable", "The session's stored state does not read",
            $"The stored state of session {sessionId} does not read as a session: it was changed in the database outside this service, or written by a newer version of it. " +
            $"Nothing was stored or changed. GET {sessionId}/integrity checks the session's recorded events and says what differs.");

    public static ProblemDetails LogsConflict(Guid sessionId) =>
        Create(409, "logs-conflict", "Different logs are already stored",
            $"Session {sessionId} already holds a different legacy log upload; logs are written once.");

    public static ProblemDetails Rejected(Rejection reason, Guid sessionId, long? startOffset) => reason switch
    {
        Rejection.BatchConflict => Create(409, "batch-conflict", "A different batch is stored at this offset",
            $"Session {sessionId} already holds a batch at startOffset {startOffset} with different content. The stored batch is kept and the attempt is recorded.",
            new Dictionary<string, object?> { ["startOffset"] = startOffset }),
        Rejection.BatchOverlap => Create(409, "batch-overlap", "The batch overlaps the previous one",
            $"startOffset {startOffset} falls inside the byte range of the batch before it. The attempt is recorded.",
            new Dictionary<string, object?> { ["startOffset"] = startOffset }),
        Rejection.OutOfOrder => Create(409, "out-of-order", "Out-of-order batch",
            $"startOffset {startOffset} is below the newest accepted batch and matches no stored batch.",
            new Dictionary<string, object?> { ["startOffset"] = startOffset }),
        Rejection.SessionClosed => Create(409, "session-closed", "The session is closed",
            $"Session {sessionId} ended and its grace window for final uploads has passed."),
        Rejection.LegacyLogsStored => Create(409, "legacy-logs-stored", "The whole recording is already stored",
            $"Session {sessionId} received its whole recording through the legacy logs upload; it takes no more batches."),
        _ => throw new ArgumentOutOfRangeException(nameof(reason), reason, null),
    };

    public static ProblemDetails Unexpected(string traceId) =>
        Create(500, "internal-error", "Unexpected error", $"The request failed unexpectedly. Trace id {traceId}.");
}
