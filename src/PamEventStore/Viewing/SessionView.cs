using PamEventStore.Sessions;

namespace PamEventStore.Viewing;

/// <summary>
/// A session as the UI shows it: the fields of Infisical's session object plus what this store adds
/// (counts, completeness, gaps, conflicts, and its tamper-evident chain: <see cref="ChainHead"/> is the
/// link of the stream's event number <see cref="ChainLength"/>, <see cref="Seal"/> the end event's link,
/// which stays as it was when events are chained on after the end). Answered inside <c>{"session": ...}</c>
/// as Infisical does.
/// </summary>
public sealed record SessionView(
    Guid Id,
    string ProjectId,
    string ResourceType,
    string ResourceName,
    string AccountName,
    string UserId,
    string? GatewayId,
    string Status,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? EndedAt,
    DateTimeOffset? ExpiresAt,
    string? EndReason,
    long BatchCount,
    long EventCount,
    long Bytes,
    DateTimeOffset? LastUploadAt,
    bool Complete,
    int GapCount,
    long MissingBytes,
    IReadOnlyList<Gap> Gaps,
    int ConflictCount,
    int LateRefusedCount,
    bool HasLegacyLogs,
    long ChainLength,
    string? ChainHead,
    SealView? Seal)
{
    public static SessionView From(PamSession s) => new(
        s.Id, s.ProjectId, s.ResourceType, s.ResourceName, s.AccountName, s.UserId, s.GatewayId,
        s.Status.ToString().ToLowerInvariant(),
        s.CreatedAt, s.UpdatedAt, s.ActivatedAt, s.EndedAt, s.ExpiresAt, s.EndReason,
        s.BatchCount, s.EventCount, s.PlaintextBytes, s.LastUploadAt,
        s.Complete, s.GapCount, s.MissingBytes, s.Gaps, s.ConflictCount, s.LateRefusedCount, s.Legacy is not null,
        s.Version, s.ChainHead is { } head ? Convert.ToBase64String(head) : null,
        s.Seal is { } seal ? new SealView(seal.Length, Convert.ToBase64String(seal.Head)) : null);

    public static SessionEnvelope Envelope(PamSession session) => new(From(session));
}

public sealed record SessionEnvelope(SessionView Session);

/// <summary>The session's seal: its end event's link (<see cref="Head"/>) at that event's version (<see cref="Length"/>).</summary>
public sealed record SealView(long Length, string Head);
