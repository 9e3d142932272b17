using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Options;
using PamEventStore.Http;
using PamEventStore.Security;
using PamEventStore.Sessions;
using Wolverine.Http;

namespace PamEventStore.Gateway;

/// <summary>Where a gateway's upload of this session stands, so a restarted gateway can resume.</summary>
public sealed record UploadState(
    Guid SessionId,
    string Status,
    long BatchCount,
    long EventCount,
    long? LastStartOffset,
    long? LastEndOffset,
    bool HasLegacyLogs,
    DateTimeOffset? AcceptsUploadsUntil);

public static class GetUploadStateEndpoint
{
    [WolverineGet("/api/v1/pam/sessions/{sessionId}/upload-state")]
    [Authorize(Policy = PamPolicies.Gateway)]
    public static async Task<IResult> Get(Guid sessionId, IQuerySession db, Caller caller, IOptions<UploadOptions> options, CancellationToken ct)
    {
        if (await db.LoadAsync<PamSession>(sessionId, ct) is not { } session || !caller.CanSeeProject(session.ProjectId)) return Problems.SessionNotFound(sessionId).ToResult();
        if (!caller.IsGatewayOf(session)) return Problems.GatewayMismatch(sessionId).ToResult();

        return Results.Ok(new UploadState(
            session.Id,
            session.Status.ToString().ToLowerInvariant(),
            session.BatchCount,
            session.EventCount,
            session.Tail?.StartOffset,
            session.Tail?.EndOffset,
            session.Legacy is not null,
            session.EndedAt + options.Value.EndedSessionGrace));
    }
}
