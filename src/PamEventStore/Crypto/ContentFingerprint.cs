using System.Security.Cryptography;

namespace PamEventStore.Crypto;

/// <summary>
/// Keyed fingerprints of recorded content: HMAC-SHA-256 under a per-org key, over the content's
/// SHA-256. Uploads are compared with what is stored, and stored content is checked after
/// decryption, by these; a plain hash of the plaintext is never stored, because a short recorded
/// command could be recovered from one by guessing it.
/// </summary>
public sealed class ContentFingerprint(byte[] key)
{
    public byte[] Of(byte[] sha256) => HMACSHA256.HashData(key, sha256);

    public bool Matches(byte[] sha256, ReadOnlySpan<byte> fingerprint) => CryptographicOperations.FixedTimeEquals(Of(sha256), fingerprint);
}
