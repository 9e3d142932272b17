using System.Text.Json.Serialization;
using PamEventStore.Crypto;

namespace PamEventStore.Sessions;

// The events of one privileged session's stream (stream id = the session's UUID, tenant = its org).
// They are the system's record of what happened and are read back for years: fields are only ever
// added, never renamed or repurposed. Recorded content appears only as ciphertext.

/// <summary>
/// An event of a session's stream. <see cref="Link"/> chains it to the event before it
/// (<see cref="Crypto.SessionChain"/>): set when it is appended, never part of what it links.
/// </summary>
public abstract record SessionEvent
{
    public byte[]? Link { get; init; }
}

/// <summary>The stored type names of the session events, in <c>mt_events.type</c> for years: fixed here, not derived from class names.</summary>
public static class SessionEventNames
{
    public static readonly IReadOnlyDictionary<Type, string> All = new Dictionary<Type, string>
    {
        [typeof(SessionStarted)] = "session_started",
        [typeof(SessionActivated)] = "session_activated",
        [typeof(BatchUploaded)] = "batch_uploaded",
        [typeof(BatchConflictRejected)] = "batch_conflict_rejected",
        [typeof(GapDetected)] = "gap_detected",
        [typeof(LateBatchRefused)] = "late_batch_refused",
        [typeof(LegacyLogsUploaded)] = "legacy_logs_uploaded",
        [typeof(SessionEnded)] = "session_ended",
    };

    public static string Of(SessionEvent e) => All[e.GetType()];
}

/// <summary>Who did something, as proven by their token; stored with every event a caller causes.</summary>
public sealed record Actor(string Type, string Subject, string? GatewayId, string? RequestId);

public sealed record SessionStarted(
    Guid SessionId,
    string ProjectId,
    string ResourceType,
    string ResourceName,
    string AccountName,
    string UserId,
    string? GatewayId,
    DateTimeOffset? ExpiresAt,
    DateTimeOffset CreatedAt,
    Actor CreatedBy) : SessionEvent;

/// <summary>The first recording arrived: the session is live.</summary>
public sealed record SessionActivated(DateTimeOffset At) : SessionEvent;

/// <summary>
/// One accepted batch of recorded events. <see cref="Sequence"/> numbers batches 0, 1, 2... in the
/// order they were accepted; this is what log pages count. <see cref="ContentFingerprint"/> is the
/// org's keyed SHA-256 of this batch's canonical events, <see cref="OffsetFingerprint"/> of everything
/// stored at <see cref="StartOffset"/> up to and including it. A re-upload at <see cref="StartOffset"/>
/// that carried the stored events plus new ones is stored as a batch of its own holding only the new
/// events, with <see cref="FirstEventIndex"/> saying where in that upload they begin.
/// </summary>
public sealed record BatchUploaded(
    long Sequence,
    long StartOffset,
    long? EndOffset,
    int FirstEventIndex,
    int EventCount,
    DateTimeOffset FirstEventAt,
    DateTimeOffset LastEventAt,
    byte[] ContentFingerprint,
    byte[] OffsetFingerprint,
    int PlaintextBytes,
    string KeyId,
    Actor UploadedBy,
    DateTimeOffset UploadedAt) : SessionEvent, IEncryptedRecording
{
    /// <summary>
    /// AES-256-GCM ciphertext of the canonical events. It is written raw into the event row's bytea
    /// column by <see cref="EncryptedRecordingSerializer"/>, not base64 inside jsonb.
    /// </summary>
    [JsonIgnore]
    public byte[] Ciphertext { get; init; } = [];

    public string? ContentEncoding { get; init; }

    /// <summary>This batch as sealed: the key, the ciphertext and how its content was packed travel together.</summary>
    public BatchUploaded SealedAs(SealedRecording sealedContent) =>
        this with { KeyId = sealedContent.KeyId, Ciphertext = sealedContent.Ciphertext, ContentEncoding = sealedContent.ContentEncoding };

    public IEncryptedRecording WithCiphertext(byte[] ciphertext) => this with { Ciphertext = ciphertext };
}

/// <summary>
/// A re-upload at a stored offset whose content differs from what is stored. The stored batch is
/// kept as it is; this records that someone tried, with the fingerprint of what they sent.
/// </summary>
public sealed record BatchConflictRejected(
    long StartOffset,
    long? EndOffset,
    string Reason,
    byte[] RejectedFingerprint,
    int RejectedEventCount,
    Actor RejectedFrom,
    DateTimeOffset At) : SessionEvent;

/// <summary>
/// New recording that arrived after the session's grace window had closed (a final flush that came too
/// late): refused, nothing of it stored, and recorded, because what it held is missing from the recording.
/// </summary>
public sealed record LateBatchRefused(
    long StartOffset,
    long? EndOffset,
    byte[] RefusedFingerprint,
    int RefusedEventCount,
    Actor RefusedFrom,
    DateTimeOffset At) : SessionEvent;

/// <summary>
/// Bytes of the gateway's recording that never arrived: the batch at <see cref="To"/> started past
/// the end (<see cref="From"/>) of the one before it.
/// </summary>
public sealed record GapDetected(long From, long To, DateTimeOffset At) : SessionEvent;

/// <summary>The whole recording, uploaded once at the end by a gateway that does not send batches.</summary>
public sealed record LegacyLogsUploaded(
    int EventCount,
    DateTimeOffset? FirstEventAt,
    DateTimeOffset? LastEventAt,
    byte[] ContentFingerprint,
    int PlaintextBytes,
    string KeyId,
    Actor UploadedBy,
    DateTimeOffset UploadedAt) : SessionEvent, IEncryptedRecording
{
    [JsonIgnore]
    public byte[] Ciphertext { get; init; } = [];

    public string? ContentEncoding { get; init; }

    /// <summary>This recording as sealed: the key, the ciphertext and how its content was packed travel together.</summary>
    public LegacyLogsUploaded SealedAs(SealedRecording sealedLogs) =>
        this with { KeyId = sealedLogs.KeyId, Ciphertext = sealedLogs.Ciphertext, ContentEncoding = sealedLogs.ContentEncoding };

    public IEncryptedRecording WithCiphertext(byte[] ciphertext) => this with { Ciphertext = ciphertext };
}

public sealed record SessionEnded(DateTimeOffset At, Actor EndedBy, string? Reason) : SessionEvent;

/// <summary>An event that carries recorded content, encrypted.</summary>
public interface IEncryptedRecording
{
    byte[] Ciphertext { get; }

    /// <summary>The data key it was sealed with.</summary>
    string KeyId { get; }

    /// <summary>The org's keyed fingerprint of its canonical content, checked after decryption.</summary>
    byte[] ContentFingerprint { get; }

    /// <summary>How the content was packed before it was encrypted (<see cref="Crypto.PackedContent"/>); null: as it is.</summary>
    string? ContentEncoding { get; }

    /// <summary>The length of the canonical content, which is what opening the ciphertext must give.</summary>
    int PlaintextBytes { get; }

    IEncryptedRecording WithCiphertext(byte[] ciphertext);
}
