using System.Security.Cryptography;
using System.Text;

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

public sealed record SealedRecording(string KeyId, byte[] Ciphertext);

/// <summary>Envelope encryption of recorded content with the org's data key (AES-256-GCM).</summary>
public sealed class RecordingCipher(OrgDataKeys keys)
{
    public async ValueTask<SealedRecording> SealAsync(RecordingPlace place, ReadOnlyMemory<byte> plaintext, CancellationToken ct)
    {
        var key = await keys.ActiveKeyAsync(place.OrgId, ct);
        return new SealedRecording(key.Id, AesGcmEnvelope.Seal(key.Key, plaintext.Span, place.AssociatedData()));
    }

    /// <exception cref="CryptographicException">
    /// The key is unknown, or the ciphertext does not open under it at this place (altered or moved).
    /// </exception>
    public async ValueTask<byte[]> OpenAsync(RecordingPlace place, string keyId, byte[] ciphertext, CancellationToken ct)
    {
        var key = await keys.KeyAsync(place.OrgId, keyId, ct)
                  ?? throw new CryptographicException($"Data key '{keyId}' is not available for org '{place.OrgId}'.");
        return AesGcmEnvelope.Open(key, ciphertext, place.AssociatedData());
    }
}
