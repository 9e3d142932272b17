using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using PamEventStore.Crypto;
using PamEventStore.Http;
using PamEventStore.Recording;
using PamEventStore.Security;
using PamEventStore.Sessions;
using Wolverine.Http;

namespace PamEventStore.Gateway;

/// <summary>
/// Infisical answers <c>{"ok": true}</c>; the rest is ours. <c>chainLength</c> and <c>chainHead</c> say
/// where the session's chain stands with the batch stored (null for a duplicate): a gateway that keeps the
/// newest holds, outside the store, what shows a cut of the session's end made after it (README, tamper evidence).
/// </summary>
public sealed record BatchReceipt(bool Ok, bool Duplicate, long? Sequence, long? ChainLength = null, string? ChainHead = null);

/// <summary>Where a batch sits in the gateway's recording file.</summary>
public sealed record BatchOffsets(long Start, long? End);

/// <summary>
/// <c>POST /api/v1/pam/sessions/{sessionId}/event-batches?startOffset=N[&amp;endOffset=M]</c>: what an
/// Infisical gateway sends every 10 seconds, the recording since its last acknowledged byte offset.
/// </summary>
public static class UploadBatchEndpoint
{
    // [WriteAggregate] would lock the stream before the body is read and answer a missing session
    // with a bare 404, which an Infisical gateway takes for "old platform". So this endpoint checks the
    // caller, reads and validates the body, resolves the org's keys, and only then hands the upload to
    // its session, which decides it on what is stored, together with other sessions' uploads
    // (UploadCommits: one transaction for several sessions, guarded by each stream's version).
    [WolverinePost("/api/v1/pam/sessions/{sessionId}/event-batches")]
    [Authorize(Policy = PamPolicies.Gateway)]
    public static async Task<IResult> Post(
        Guid sessionId,
        HttpRequest request,
        IDocumentSession db,
        Caller caller,
        RecordingCipher cipher,
        SessionBindings sessions,
        StoredBatchMemory memory,
        UploadCommits commits,
        UploadAdmission admission,
        IOptions<UploadOptions> options,
        CancellationToken ct)
    {
        var (offsets, offsetProblem) = ReadOffsets(request.Query);
        if (offsets is not var (startOffset, endOffset)) return offsetProblem!.ToResult();

        if (await GatewayStream.RefuseStrangerAsync(db, sessions, sessionId, caller, ct) is { } stranger) return stranger;

        // Held until the upload is decided: a node whose database stalls turns uploads away instead of
        // holding them all. What would be refused anyway is refused first, so a gateway does not retry it.
        var limit = options.Value.MaxBatchBytes;
        if (RequestBody.RefuseUnread(request, limit) is { } unread) return unread.ToResult();
        using var admitted = admission.TryAdmit(Math.Min(request.ContentLength ?? limit, limit), UploadAdmission.Holder(caller.OrgId, caller.GatewayId!), out var gatewayFull);
        if (admitted is null) return (gatewayFull ? Problems.GatewayBusy(admission.HolderLimit, RetryAfterSeconds) : Problems.Busy(admission.Limit, RetryAfterSeconds)).ToResult();

        // Holding its share, the body must keep coming: one that trickles is cut off (408) instead of holding it for minutes.
        var (body, bodyProblem) = await RequestBody.ReadPacedAsync(request, limit, options.Value.BatchMinBytesPerSecond, options.Value.BatchGrace, ct);
        if (bodyProblem is not null) return bodyProblem.ToResult();

        // An exact retry of what this node stored: the answer cannot have changed since.
        var bodySha256 = StoredBatchMemory.BodyHash(body);
        if (memory.IsStored(caller.OrgId, sessionId, caller.GatewayId!, startOffset, bodySha256)) return Duplicate;

        if (!RecordingParser.TryParseBatch(body, out var content, out var error)) return Problems.InvalidRecording(error).ToResult();
        var sealing = await cipher.SealingAsync(caller.OrgId, ct);

        var upload = new ReadyUpload(sessionId, caller, new IncomingBatch(startOffset, endOffset, content, sealing.Fingerprint), sealing, admitted.HandOver())
        {
            Packed = PackedContent.Pack(content.Canonical.Span, options.Value.CompressContent),
        };
        switch (await commits.CommitAsync(upload, ct))
        {
            case UploadOutcome.Stored stored:
                memory.RememberStored(caller.OrgId, sessionId, caller.GatewayId!, startOffset, bodySha256);
                return Results.Ok(new BatchReceipt(true, false, stored.Sequence, stored.Chain?.Length, stored.Chain is { } chain ? Convert.ToBase64String(chain.Head) : null));
            case UploadOutcome.AlreadyStored:
                memory.RememberStored(caller.OrgId, sessionId, caller.GatewayId!, startOffset, bodySha256);
                return Duplicate;
            case UploadOutcome.Refused refused:
                return Problems.Rejected(refused.Reason, sessionId, startOffset).ToResult();
            case UploadOutcome.OtherGateway:
                return Problems.GatewayMismatch(sessionId).ToResult();
            case UploadOutcome.NotTaken:
                return Problems.DatabaseUnavailable(ErrorResponses.DatabaseRetryAfterSeconds).ToResult();
            default:
                return Problems.SessionNotFound(sessionId).ToResult();
        }
    }

    private static readonly IResult Duplicate = Results.Ok(new BatchReceipt(true, true, null));

    /// <summary>Seconds a turned-away gateway is asked to wait; an Infisical gateway retries on its next 10-second tick anyway.</summary>
    private const int RetryAfterSeconds = 1;

    /// <summary>
    /// Strict: Wolverine's own binding would read "abc" or "-1" as 0 and store the batch at the
    /// wrong place.
    /// </summary>
    public static (BatchOffsets? Offsets, ProblemDetails? Problem) ReadOffsets(IQueryCollection query)
    {
        if (!WholeNumber.TryRead(query, "startOffset", out var start) || start is null)
            return (null, Problems.InvalidRequest("startOffset is required: a non-negative integer, the batch's byte offset in the gateway's recording."));
        if (!WholeNumber.TryRead(query, "endOffset", out var end))
            return (null, Problems.InvalidRequest("endOffset, when given, must be a non-negative integer."));
        if (end <= start)
            return (null, Problems.InvalidRequest("endOffset must be greater than startOffset."));

        return (new BatchOffsets(start.Value, end), null);
    }
}
