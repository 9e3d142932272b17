using JasperFx.Events;

namespace PamEventStore.Sessions;

public enum SessionStatus
{
    Starting,
    Active,
    Ended,
}

/// <summary>A byte range of the gateway's recording that never arrived.</summary>
public sealed record Gap(long From, long To);

/// <summary>
/// What is stored at one start offset: the cumulative event count and fingerprint after each batch
/// stored there (more than one only when a re-upload extended the first).
/// </summary>
public sealed record OffsetSegment(int EventCountEnd, byte[] Fingerprint);

/// <summary>The batches at the newest accepted start offset: what the next upload is checked against.</summary>
public sealed record TailOffset(long StartOffset, long? EndOffset, IReadOnlyList<OffsetSegment> Segments);

/// <summary>A refusal that was recorded: what was sent, and where.</summary>
public sealed record RecordedRefusal(long StartOffset, byte[] Fingerprint)
{
    /// <summary>The same content again at the same offset: a refused gateway sends it again on every tick.</summary>
    public bool IsRepeatedBy(long startOffset, byte[] fingerprint) => startOffset == StartOffset && fingerprint.AsSpan().SequenceEqual(Fingerprint);
}

/// <summary>Where a session's chain stands: its length (the stream's version) and the link of its last event.</summary>
public sealed record ChainPosition(long Length, byte[] Head);

/// <summary>The legacy bulk upload, written once: its fingerprint decides duplicates, its version finds it.</summary>
public sealed record LegacyRecording(byte[] Fingerprint, int EventCount, long StreamVersion, DateTimeOffset UploadedAt);

/// <summary>
/// The session aggregate, kept as an inline snapshot. It holds what upload decisions and the session
/// view need and nothing that grows with the recording: the newest offset's hashes, counts and a
/// bounded list of gaps. Older batches are looked up through <see cref="RecordedBatch"/>.
/// </summary>
public sealed record PamSession
{
    /// <summary>Enough gaps to show an auditor; beyond it only the count and bytes grow.</summary>
    public const int MaxListedGaps = 100;

    public Guid Id { get; init; }

    /// <summary>The stream version this snapshot reflects; set by Marten.</summary>
    public long Version { get; set; }

    public string ProjectId { get; init; } = "";
    public string ResourceType { get; init; } = "";
    public string ResourceName { get; init; } = "";
    public string AccountName { get; init; } = "";
    public string UserId { get; init; } = "";
    public string? GatewayId { get; init; }
    public DateTimeOffset? ExpiresAt { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }

    public SessionStatus Status { get; init; }
    public DateTimeOffset? ActivatedAt { get; init; }
    public DateTimeOffset? EndedAt { get; init; }
    public string? EndReason { get; init; }

    public long BatchCount { get; init; }
    public long EventCount { get; init; }
    public long PlaintextBytes { get; init; }
    public DateTimeOffset? LastUploadAt { get; init; }
    public TailOffset? Tail { get; init; }

    public int GapCount { get; init; }
    public long MissingBytes { get; init; }
    public IReadOnlyList<Gap> Gaps { get; init; } = [];
    public int ConflictCount { get; init; }

    /// <summary>The last conflict recorded: the same content sent again at the same offset is refused without being recorded again.</summary>
    public RecordedRefusal? LastConflict { get; init; }

    public int LateRefusedCount { get; init; }

    /// <summary>The last late upload recorded: the same content sent again at the same offset is refused without being recorded again.</summary>
    public RecordedRefusal? LastLateRefused { get; init; }

    public LegacyRecording? Legacy { get; init; }

    /// <summary>The link of the stream's last event (<see cref="Crypto.SessionChain"/>): the next event is linked onto it.</summary>
    public byte[]? ChainHead { get; init; }

    /// <summary>
    /// Set by the end: the chain's position at its end event, what a reader keeps outside the store to
    /// check the session against later.
    /// </summary>
    public ChainPosition? Seal { get; init; }

    /// <summary>Every byte the gateway recorded reached us, as far as its offsets and its late uploads tell.</summary>
    public bool Complete => GapCount == 0 && LateRefusedCount == 0;

    public static PamSession Create(SessionStarted e) => new()
    {
        Id = e.SessionId,
        ProjectId = e.ProjectId,
        ResourceType = e.ResourceType,
        ResourceName = e.ResourceName,
        AccountName = e.AccountName,
        UserId = e.UserId,
        GatewayId = e.GatewayId,
        ExpiresAt = e.ExpiresAt,
        CreatedAt = e.CreatedAt,
        UpdatedAt = e.CreatedAt,
        Status = SessionStatus.Starting,
        ChainHead = e.Link,
    };

    public PamSession Apply(SessionActivated e) => this with { Status = SessionStatus.Active, ActivatedAt = e.At, UpdatedAt = e.At, ChainHead = e.Link };

    public PamSession Apply(BatchUploaded e)
    {
        var segment = new OffsetSegment(e.FirstEventIndex + e.EventCount, e.OffsetFingerprint);
        var tail = Tail is { } t && t.StartOffset == e.StartOffset
            ? t with { EndOffset = e.EndOffset ?? t.EndOffset, Segments = [.. t.Segments, segment] }
            : new TailOffset(e.StartOffset, e.EndOffset, [segment]);

        return this with
        {
            BatchCount = e.Sequence + 1,
            EventCount = EventCount + e.EventCount,
            PlaintextBytes = PlaintextBytes + e.PlaintextBytes,
            LastUploadAt = e.UploadedAt,
            UpdatedAt = e.UploadedAt,
            Tail = tail,
            ChainHead = e.Link,
        };
    }

    public PamSession Apply(GapDetected e) => this with
    {
        GapCount = GapCount + 1,
        MissingBytes = MissingBytes + (e.To - e.From),
        Gaps = Gaps.Count < MaxListedGaps ? [.. Gaps, new Gap(e.From, e.To)] : Gaps,
        UpdatedAt = e.At,
        ChainHead = e.Link,
    };

    public PamSession Apply(BatchConflictRejected e) => this with
    {
        ConflictCount = ConflictCount + 1,
        LastConflict = new RecordedRefusal(e.StartOffset, e.RejectedFingerprint),
        UpdatedAt = e.At,
        ChainHead = e.Link,
    };

    public PamSession Apply(LateBatchRefused e) => this with
    {
        LateRefusedCount = LateRefusedCount + 1,
        LastLateRefused = new RecordedRefusal(e.StartOffset, e.RefusedFingerprint),
        UpdatedAt = e.At,
        ChainHead = e.Link,
    };

    public PamSession Apply(IEvent<LegacyLogsUploaded> e) => ApplyLegacy(e.Data, e.Version);

    private PamSession ApplyLegacy(LegacyLogsUploaded e, long version) => this with
    {
        Legacy = new LegacyRecording(e.ContentFingerprint, e.EventCount, version, e.UploadedAt),
        EventCount = EventCount + e.EventCount,
        PlaintextBytes = PlaintextBytes + e.PlaintextBytes,
        LastUploadAt = e.UploadedAt,
        UpdatedAt = e.UploadedAt,
        ChainHead = e.Link,
    };

    public PamSession Apply(IEvent<SessionEnded> e) => ApplyEnded(e.Data, e.Version);

    /// <summary>The end, as the event at <paramref name="version"/>: its link is the session's seal.</summary>
    private PamSession ApplyEnded(SessionEnded e, long version) => this with
    {
        Status = SessionStatus.Ended,
        EndedAt = e.At,
        EndReason = e.Reason,
        UpdatedAt = e.At,
        ChainHead = e.Link,
        Seal = e.Link is { } link ? new ChainPosition(version, link) : null,
    };

    /// <summary>
    /// The snapshot as the stream's events give it, one event at a time (<paramref name="version"/> is the
    /// event's): what the integrity check compares the stored snapshot with. Null before the stream's start.
    /// </summary>
    public static PamSession? Replay(PamSession? session, object e, long version) => (session, e) switch
    {
        (null, SessionStarted started) => Create(started) with { Version = version },
        (null, _) => null,
        (_, SessionActivated activated) => session.Apply(activated) with { Version = version },
        (_, BatchUploaded batch) => session.Apply(batch) with { Version = version },
        (_, GapDetected gap) => session.Apply(gap) with { Version = version },
        (_, BatchConflictRejected conflict) => session.Apply(conflict) with { Version = version },
        (_, LateBatchRefused late) => session.Apply(late) with { Version = version },
        (_, LegacyLogsUploaded legacy) => session.ApplyLegacy(legacy, version) with { Version = version },
        (_, SessionEnded ended) => session.ApplyEnded(ended, version) with { Version = version },
        _ => session with { Version = version },
    };
}
