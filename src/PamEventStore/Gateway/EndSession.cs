using Marten;
using Microsoft.AspNetCore.Authorization;
using PamEventStore.Crypto;
using PamEventStore.Http;
using PamEventStore.Security;
using PamEventStore.Sessions;
using PamEventStore.Viewing;
using Wolverine.Http;

namespace PamEventStore.Gateway;

/// <summary>
/// <c>POST /api/v1/pam/sessions/{sessionId}/end</c>: the gateway (after its final flush) or the
/// platform closes the session. Idempotent: ending an ended session changes nothing and answers 200.
/// </summary>
public static class EndSessionEndpoint
{
    private const int MaxReasonLength = 200;

    /// <summary>The log category every seal is written to.</summary>
    public const string SealLog = "PamEventStore.Seals";

    [WolverinePost("/api/v1/pam/sessions/{sessionId}/end")]
    [Authorize(Policy = PamPolicies.GatewayOrCreate)]
    public static async Task<IResult> Post(Guid sessionId, HttpRequest request, IDocumentSession db, Caller caller, RecordingCipher cipher, ILoggerFactory logs, TimeProvider clock, SessionSignals signals, CancellationToken ct)
    {
        // Read here, not bound: binding joins a repeated reason into one ("a,b"), which no one sent.
        var reasons = request.Query["reason"];
        if (reasons.Count > 1) return Problems.InvalidRequest("reason is given more than once.").ToResult();
        var reason = reasons.Count == 1 ? reasons[0] : null;
        if (reason is { Length: > MaxReasonLength }) return Problems.InvalidRequest($"reason is longer than {MaxReasonLength} characters.").ToResult();
        if (reason is not null && PlainText.HasControlCharacter(reason)) return Problems.InvalidRequest("reason holds a control character (a NUL, a line break, an escape...).").ToResult();

        // No session is ever created with the empty id, and Marten refuses to fetch it for writing.
        if (sessionId == Guid.Empty) return Problems.SessionNotFound(sessionId).ToResult();

        var sealing = await cipher.SealingAsync(caller.OrgId, ct);
        var stream = await db.Events.FetchForExclusiveWriting<PamSession>(sessionId, ct);
        if (stream.Aggregate is not { } session || !caller.CanSeeProject(session.ProjectId)) return Problems.SessionNotFound(sessionId).ToResult();

        // A gateway may end only its own sessions; the platform (create scope) any session of its org.
        if (caller.IsGateway && !caller.IsGatewayOf(session)) return Problems.GatewayMismatch(sessionId).ToResult();
        if (session.Status == SessionStatus.Ended) return Results.Ok(SessionView.Envelope(session));

        stream.AppendLinked(sealing.Chain, caller.OrgId, sessionId, [new SessionEnded(clock.GetUtcNow(), caller.AsActor(), reason)]);
        var ended = PamSession.Replay(session, stream.Events[^1].Data, stream.Position().Length)!;
        await db.SaveChangesAsync(ct);
        signals.Signal(caller.OrgId, sessionId);

        // A copy of the seal outside the database, wherever the logs are shipped: what a cut of the
        // session's end is checked against (README, tamper evidence).
        var seal = ended.Seal!;
        logs.CreateLogger(SealLog).LogInformation(
            "Session {SessionId} of org {OrgId} sealed at event {ChainLength}: {ChainHead}", sessionId, caller.OrgId, seal.Length, Convert.ToBase64String(seal.Head));
        return Results.Ok(SessionView.Envelope(ended));
    }
}
