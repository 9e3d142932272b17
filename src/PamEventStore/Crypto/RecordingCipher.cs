using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using PamEventStore.Sessions;

namespace PamEventStore.Crypto;

/// <summary>Where a piece of recorded content belongs; bound into its ciphertext as associated data.</summary>
public abstract record RecordingPlace(string OrgId, Guid SessionId)
{
    /// <summary>
    /// The associated data: a ciphertext copied to another org, session, sequence or offset no longer
    /// opens, so stored batches cannot be moved or reordered without it showing.
    /// </summary>
    public abstract byte[] AssociatedData();
}

public sealed record BatchPlace(string OrgId, Guid SessionId, long Sequence, long StartOffset) : RecordingPlace(OrgId, SessionId)
{
    public override byte[] AssociatedData() =>
        Encoding.UTF8.GetBytes($"pam-batch/v1|{OrgId.Length}:{OrgId}|{SessionId:D}|{Sequence}|{StartOffset}");
}

public sealed record LegacyLogsPlace(string OrgId, Guid SessionId) : RecordingPlace(OrgId, SessionId)
{
    public override byte[] AssociatedData() =>
        Encoding.UTF8.GetBytes($"pam-legacy-logs/v1|{OrgId.Length}:{OrgId}|{SessionId:D}");
}

/// <param name="ContentEncoding">How the content was packed before it was encrypted (<see cref="PackedContent"/>).</param>
public sealed record SealedRecording(string KeyId, byte[] Ciphertext, string? ContentEncoding);

/// <summary>
/// Envelope encryption of recorded content (AES-256-GCM). Each session seals under its own key,
/// derived from the org's data key (HKDF-SHA-256 with the org and session as context): random 96-bit
/// nonces then stay far below their safe use count per key however long an org records, and a
/// ciphertext cannot open under another session's key.
/// </summary>
public sealed class RecordingCipher(OrgDataKeys keys)
{
    /// <summary>The org's keys for sealing; resolve them before taking locks, it may read the database.</summary>
    public ValueTask<OrgSealing> SealingAsync(string orgId, CancellationToken ct) => keys.SealingAsync(orgId, ct);

    /// <returns>The org's fingerprint key, or null when the org has never recorded.</returns>
    public ValueTask<ContentFingerprint?> FingerprintAsync(string orgId, CancellationToken ct) => keys.FingerprintAsync(orgId, ct);

    /// <returns>The org's session chain key, or null when the org has no keys.</returns>
    public ValueTask<SessionChain?> ChainAsync(string orgId, CancellationToken ct) => keys.ChainAsync(orgId, ct);

    public static SealedRecording Seal(OrgSealing sealing, RecordingPlace place, PackedContent content)
    {
        if (sealing.OrgId != place.OrgId) throw new ArgumentException($"Keys of org '{sealing.OrgId}' cannot seal for org '{place.OrgId}'.", nameof(place));
        var ciphertext = AesGcmEnvelope.Seal(SessionKey(sealing.Active.Key, place), content.Bytes, AssociatedData(place, content.Encoding));
        return new SealedRecording(sealing.Active.Id, ciphertext, content.Encoding);
    }

    /// <returns>The recording's content, unpacked: <see cref="IEncryptedRecording.PlaintextBytes"/> bytes.</returns>
    /// <exception cref="CryptographicException">
    /// The key is unknown or unusable, or the ciphertext does not open under it at this place with its
    /// encoding (altered or moved), or it does not unpack to its recorded length.
    /// </exception>
    public async ValueTask<byte[]> OpenAsync(RecordingPlace place, IEncryptedRecording recording, CancellationToken ct)
    {
        var key = await keys.KeyAsync(place.OrgId, recording.KeyId, ct)
                  ?? throw new CryptographicException($"Data key '{recording.KeyId}' is not available for org '{place.OrgId}'.");
        var packed = AesGcmEnvelope.Open(SessionKey(key, place), recording.Ciphertext, AssociatedData(place, recording.ContentEncoding));
        return PackedContent.Unpack(recording.ContentEncoding, packed, recording.PlaintextBytes);
    }

    /// <summary>The place, and for packed content its encoding: content stored unpacked keeps the associated data it always had.</summary>
    private static byte[] AssociatedData(RecordingPlace place, string? contentEncoding) =>
        contentEncoding is null ? place.AssociatedData() : [.. place.AssociatedData(), .. Encoding.UTF8.GetBytes($"|{contentEncoding}")];

    // A page opens a hundred batches of one session, an upload stream seals thousands: derive each
    // session's key once. Held like the data keys it comes from: in this process's memory only.
    private static readonly ConcurrentDictionary<(byte[] DataKey, string OrgId, Guid SessionId), byte[]> SessionKeys = new();
    private const int RememberedSessionKeys = 10_000;

    private static byte[] SessionKey(byte[] dataKey, RecordingPlace place)
    {
        if (SessionKeys.TryGetValue((dataKey, place.OrgId, place.SessionId), out var known)) return known;
        if (SessionKeys.Count >= RememberedSessionKeys) SessionKeys.Clear();

        var derived = HKDF.DeriveKey(HashAlgorithmName.SHA256, dataKey, AesGcmEnvelope.KeySize, salt: null,
            info: Encoding.UTF8.GetBytes($"pam-session-key/v1|{place.OrgId.Length}:{place.OrgId}|{place.SessionId:D}"));
        SessionKeys[(dataKey, place.OrgId, place.SessionId)] = derived;
        return derived;
    }
}
