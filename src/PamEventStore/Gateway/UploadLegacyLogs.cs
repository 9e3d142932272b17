using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Options;
using PamEventStore.Crypto;
using PamEventStore.Http;
using PamEventStore.Recording;
using PamEventStore.Security;
using PamEventStore.Sessions;
using PamEventStore.Viewing;
using Wolverine.Http;

namespace PamEventStore.Gateway;

/// <summary>
/// <c>POST /api/v1/pam/sessions/{sessionId}/logs</c>, body <c>{"logs": [events]}</c>: the whole recording
/// at session end, from a gateway that found no batch endpoint (or an older gateway).
/// </summary>
public static class UploadLegacyLogsEndpoint
{
    [WolverinePost("/api/v1/pam/sessions/{sessionId}/logs")]
    [Authorize(Policy = PamPolicies.Gateway)]
    public static async Task<IResult> Post(
        Guid sessionId,
        HttpRequest request,
        IDocumentSession db,
        Caller caller,
        RecordingCipher cipher,
        SessionBindings sessions,
        UploadAdmission admission,
        IOptions<UploadOptions> options,
        TimeProvider clock,
        SessionSignals signals,
        CancellationToken ct)
    {
        if (await GatewayStream.RefuseStrangerAsync(db, sessions, sessionId, caller, ct) is { } stranger) return stranger;

        // Whole recordings: a few at a time, each waiting for its turn before its body is read, so that
        // many sessions ending at once cannot make the node hold all their recordings in memory together.
        var limit = options.Value.MaxLegacyLogsBytes;
        if (RequestBody.RefuseUnread(request, limit) is { } unread) return unread.ToResult();
        using var turn = await admission.WaitForLegacyTurnAsync(ct);
        if (turn is null) return Problems.LegacyLogsBusy(admission.LegacyTurns, RetryAfterSeconds).ToResult();

        // Holding a turn, the body must keep coming: a gateway that stalls or trickles is cut off (408)
        // instead of keeping the turn from every other legacy upload for hours at the server's default pace.
        var (body, bodyProblem) = await RequestBody.ReadPacedAsync(request, limit, options.Value.LegacyLogsMinBytesPerSecond, options.Value.LegacyLogsGrace, ct);
        if (bodyProblem is not null) return bodyProblem.ToResult();
        if (!RecordingParser.TryParseLegacyLogs(body, out var logs, out var error)) return Problems.InvalidRecording(error).ToResult();

        var sealing = await cipher.SealingAsync(caller.OrgId, ct);
        var (stream, refusal) = await GatewayStream.LockAsync(db, sessionId, caller, ct);
        if (stream is null) return refusal!;
        var session = stream.Aggregate!;

        switch (LegacyLogsRules.Decide(session, logs, sealing.Fingerprint, caller.AsActor(), clock.GetUtcNow(), options.Value.EndedSessionGrace))
        {
            case AcceptLegacyLogs accept:
                // Packed and sealed only once accepted: a retried recording (a duplicate) costs a hash, not a compression of megabytes.
                var sealedLogs = RecordingCipher.Seal(sealing, new LegacyLogsPlace(caller.OrgId, sessionId), PackedContent.Pack(logs.Canonical.Span, options.Value.CompressContent));
                stream.AppendLinked(sealing.Chain, caller.OrgId, sessionId, accept.Events(accept.Logs.SealedAs(sealedLogs)));
                await db.SaveChangesAsync(ct);
                signals.Signal(caller.OrgId, sessionId);
                return Results.Ok(SessionView.Envelope((await db.LoadAsync<PamSession>(sessionId, ct))!));

            case RejectBatch reject:
                stream.AppendLinked(sealing.Chain, caller.OrgId, sessionId, reject.Events());
                if (stream.Events.Count > 0) await db.SaveChangesAsync(ct);

                return reject.Reason == Rejection.SessionClosed
                    ? Problems.Rejected(reject.Reason, sessionId, null).ToResult()
                    : Problems.LogsConflict(sessionId).ToResult();

            default:
                return Results.Ok(SessionView.Envelope(session));
        }
    }

    private const int RetryAfterSeconds = 5;
}
