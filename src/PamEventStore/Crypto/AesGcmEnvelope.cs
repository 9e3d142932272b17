using System.Security.Cryptography;

namespace PamEventStore.Crypto;

/// <summary>
/// AES-256-GCM with the layout <c>nonce(12) || ciphertext || tag(16)</c>, used both for recorded
/// content under an org's data key and for data keys under a master key.
/// </summary>
public static class AesGcmEnvelope
{
    public const int KeySize = 32;
    private const int NonceSize = 12;
    private const int TagSize = 16;

    public static byte[] Seal(ReadOnlySpan<byte> key, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData)
    {
        var sealedBytes = new byte[NonceSize + plaintext.Length + TagSize];
        var nonce = sealedBytes.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(key, TagSize);
        aes.Encrypt(nonce, plaintext, sealedBytes.AsSpan(NonceSize, plaintext.Length), sealedBytes.AsSpan(NonceSize + plaintext.Length), associatedData);
        return sealedBytes;
    }

    /// <exception cref="CryptographicException">Wrong key, altered bytes or associated data that does not match.</exception>
    public static byte[] Open(ReadOnlySpan<byte> key, ReadOnlySpan<byte> sealedBytes, ReadOnlySpan<byte> associatedData)
    {
        if (sealedBytes.Length < NonceSize + TagSize) throw new CryptographicException("Ciphertext is too short.");

        var plaintext = new byte[sealedBytes.Length - NonceSize - TagSize];
        using var aes = new AesGcm(key, TagSize);
        aes.Decrypt(sealedBytes[..NonceSize], sealedBytes.Slice(NonceSize, plaintext.Length), sealedBytes[^TagSize..], plaintext, associatedData);
        return plaintext;
    }
}
