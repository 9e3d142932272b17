using Marten;
using Microsoft.AspNetCore.Authorization;
using PamEventStore.Http;
using PamEventStore.Security;
using PamEventStore.Sessions;
using Wolverine.Http;

namespace PamEventStore.Viewing;

public static class GetSessionEndpoint
{
    [WolverineGet("/api/v1/pam/sessions/{sessionId}")]
    [Authorize(Policy = PamPolicies.Read)]
    public static async Task<IResult> Get(Guid sessionId, IQuerySession db, Caller caller, CancellationToken ct) =>
        await db.LoadAsync<PamSession>(sessionId, ct) is { } session && caller.CanSeeProject(session.ProjectId)
            ? Results.Ok(SessionView.Envelope(session))
            : Problems.SessionNotFound(sessionId).ToResult();
}
