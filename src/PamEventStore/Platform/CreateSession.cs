using System.Text.RegularExpressions;
using Marten;
using Marten.Exceptions;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using PamEventStore.Crypto;
using PamEventStore.Http;
using PamEventStore.Security;
using PamEventStore.Sessions;
using PamEventStore.Viewing;
using Wolverine.Http;

namespace PamEventStore.Platform;

/// <summary>What the platform sends when a user is granted access to a resource through a gateway.</summary>
public sealed record CreateSession(
    Guid? Id,
    string? ProjectId,
    string? ResourceType,
    string? ResourceName,
    string? AccountName,
    string? UserId,
    string? GatewayId,
    DateTimeOffset? ExpiresAt);

public static partial class CreateSessionEndpoint
{
    /// <summary>A session's description: a few names and ids of at most 256 characters each.</summary>
    public const int MaxBodyBytes = 64 * 1024;

    [GeneratedRegex(@"^[a-z0-9][a-z0-9_-]{0,39}\z")]
    private static partial Regex ResourceTypePattern();

    public static ProblemDetails Validate(CreateSession? command, Caller caller, TimeProvider clock)
    {
        if (command is null) return Problems.InvalidRequest("The body must be a JSON object describing the session.");

        string? Unfit(string value, string name, int max = 256) =>
            value.Length > max ? $"'{name}' is longer than {max} characters."
            : PlainText.HasControlCharacter(value) ? $"'{name}' holds a control character (a NUL, a line break, an escape...)."
            : null;

        string? Missing(string? value, string name) => string.IsNullOrWhiteSpace(value) ? $"'{name}' is required." : Unfit(value, name);

        // A token lists its projects separated by spaces, so a project id holding one could never be covered by a list.
        var problem = Missing(command.ProjectId, "projectId")
                      ?? (command.ProjectId!.Any(char.IsWhiteSpace) ? "'projectId' must not hold whitespace." : null)
                      ?? Missing(command.ResourceType, "resourceType")
                      ?? Missing(command.ResourceName, "resourceName")
                      ?? Missing(command.AccountName, "accountName")
                      ?? Missing(command.UserId, "userId")
                      ?? (command.GatewayId is not { } gatewayId ? null
                          : string.IsNullOrWhiteSpace(gatewayId) ? "'gatewayId' must not be blank when given."
                          : Unfit(gatewayId, "gatewayId"))
                      ?? (!ResourceTypePattern().IsMatch(command.ResourceType!) ? "'resourceType' must be a lowercase name such as ssh, postgres or kubernetes." : null)
                      ?? (command.Id == Guid.Empty ? "'id' must not be the empty UUID." : null)
                      ?? (command.ExpiresAt <= clock.GetUtcNow() ? "'expiresAt' is in the past." : null);

        if (problem is not null) return Problems.InvalidRequest(problem);
        if (!caller.CanSeeProject(command.ProjectId!)) return Problems.Forbidden($"The token does not cover project '{command.ProjectId}'.");
        return WolverineContinue.NoProblems;
    }

    /// <summary>
    /// Creating is idempotent so the platform can retry: the same id with the same details answers
    /// 200 with the stored session, with other details 409. An existing stream is never touched.
    /// </summary>
    [WolverinePost("/api/v1/pam/sessions")]
    [Authorize(Policy = PamPolicies.Create)]
    [JsonBody(MaxBodyBytes)]
    public static async Task<IResult> Post(CreateSession command, IDocumentSession db, Caller caller, RecordingCipher cipher, TimeProvider clock, CancellationToken ct)
    {
        var sessionId = command.Id ?? Guid.CreateVersion7();
        var started = new SessionStarted(
            sessionId,
            command.ProjectId!,
            command.ResourceType!,
            command.ResourceName!,
            command.AccountName!,
            command.UserId!,
            command.GatewayId,
            command.ExpiresAt?.ToUniversalTime(),
            clock.GetUtcNow(),
            caller.AsActor());

        if (await db.LoadAsync<PamSession>(sessionId, ct) is { } existing) return Existing(existing, started);

        started = started.Linked((await cipher.SealingAsync(caller.OrgId, ct)).Chain, caller.OrgId);
        db.Events.StartStream<PamSession>(sessionId, started);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (ExistingStreamIdCollisionException)
        {
            // A concurrent retry created it first.
            await using var reread = db.DocumentStore.QuerySession(db.TenantId);
            return Existing((await reread.LoadAsync<PamSession>(sessionId, ct))!, started);
        }

        return Results.Created($"/api/v1/pam/sessions/{sessionId}", SessionView.Envelope(PamSession.Replay(null, started, 1)!));
    }

    private static IResult Existing(PamSession existing, SessionStarted requested) =>
        existing.ProjectId == requested.ProjectId
        && existing.ResourceType == requested.ResourceType
        && existing.ResourceName == requested.ResourceName
        && existing.AccountName == requested.AccountName
        && existing.UserId == requested.UserId
        && existing.GatewayId == requested.GatewayId
        && existing.ExpiresAt == requested.ExpiresAt
            ? Results.Ok(SessionView.Envelope(existing))
            : Problems.SessionExists(existing.Id).ToResult();
}
