using JasperFx.Events;
using Marten;
using PamEventStore.Http;
using PamEventStore.Security;
using PamEventStore.Sessions;

namespace PamEventStore.Gateway;

internal static class GatewayStream
{
    /// <summary>
    /// Refuses a caller that is not the session's gateway before its body is read: any gateway of any
    /// org holds a gateway token, and an upload body can be megabytes. A session outside the projects the
    /// token lists is no session to it, as to a reader. Null when the caller may go on.
    /// </summary>
    public static async Task<IResult?> RefuseStrangerAsync(IQuerySession db, SessionBindings sessions, Guid sessionId, Caller caller, CancellationToken ct)
    {
        if (await sessions.OfAsync(db, caller.OrgId, sessionId, ct) is not { } binding || !caller.CanSeeProject(binding.ProjectId)) return Problems.SessionNotFound(sessionId).ToResult();
        return caller.IsGateway && binding.GatewayId is not null && caller.GatewayId == binding.GatewayId ? null : Problems.GatewayMismatch(sessionId).ToResult();
    }

    /// <summary>
    /// Takes the session's stream for a write by its own gateway. The row lock makes concurrent
    /// retries of one upload queue instead of racing to a version conflict: the second sees what the
    /// first stored and is a plain duplicate. The lock is held until the session commits or is disposed.
    /// </summary>
    public static async Task<(IEventStream<PamSession>? Stream, IResult? Refusal)> LockAsync(IDocumentSession db, Guid sessionId, Caller caller, CancellationToken ct)
    {
        var stream = await db.Events.FetchForExclusiveWriting<PamSession>(sessionId, ct);
        if (stream.Aggregate is not { } session || !caller.CanSeeProject(session.ProjectId)) return (null, Problems.SessionNotFound(sessionId).ToResult());
        if (!caller.IsGatewayOf(session)) return (null, Problems.GatewayMismatch(sessionId).ToResult());
        return (stream, null);
    }
}
