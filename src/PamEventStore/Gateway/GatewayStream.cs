using JasperFx.Events;
using Marten;
using PamEventStore.Http;
using PamEventStore.Security;
using PamEventStore.Sessions;

namespace PamEventStore.Gateway;

internal static class GatewayStream
{
    /// <summary>
    /// Takes the session's stream for a write by its own gateway. The row lock makes concurrent
    /// retries of one upload queue instead of racing to a version conflict: the second sees what the
    /// first stored and is a plain duplicate. The lock is held until the session commits or is disposed.
    /// </summary>
    public static async Task<(IEventStream<PamSession>? Stream, IResult? Refusal)> LockAsync(IDocumentSession db, Guid sessionId, Caller caller, CancellationToken ct)
    {
        var stream = await db.Events.FetchForExclusiveWriting<PamSession>(sessionId, ct);
        if (stream.Aggregate is not { } session) return (null, Problems.SessionNotFound(sessionId).ToResult());
        if (!caller.IsGatewayOf(session)) return (null, Problems.GatewayMismatch(sessionId).ToResult());
        return (stream, null);
    }
}
