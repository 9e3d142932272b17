using System.Buffers;
using System.IO.Compression;
using System.Security.Cryptography;

namespace PamEventStore.Crypto;

/// <summary>
/// Recorded content as it is sealed: compressed with Brotli (<see cref="Brotli"/>) when that makes it
/// smaller, as it is otherwise (<see cref="Encoding"/> null). Recordings are JSON (terminal output,
/// queries and their results) and compress to a quarter of their size or less, which is what a
/// recording costs on disk and in WAL for as long as it is kept. Compressing happens before
/// encryption, since ciphertext does not compress; the encoding is bound into the ciphertext's
/// associated data, so it cannot be switched on a stored batch without the batch failing to open.
/// Brotli at quality 1 rather than DEFLATE at its fastest level: in three A/B pairs of the benchmark
/// both gave the same upload rate and log pages that could not be told apart, and Brotli stores a
/// batch a sixth smaller.
/// </summary>
/// <remarks>
/// Compression makes a ciphertext's length depend on how repetitive its content is (the CRIME/BREACH
/// family). Here the only party that puts content into a recording is the session's own user, who
/// sees all of it, and a stored batch's length is visible only to readers of the database, to whom
/// its size and timing were visible before; there is no secret for such an attacker to guess.
/// </remarks>
public sealed record PackedContent(byte[] Bytes, string? Encoding)
{
    public const string Brotli = "br";

    // Quality 1: about 20 µs for a 6 KB batch and a quarter of its size; higher qualities cost three
    // times the CPU for a few percent less. Decompressing costs the same whatever the quality.
    private const int Quality = 1;
    private const int Window = 22;

    /// <summary>Content this short is not worth a compressed stream's framing.</summary>
    private const int MinBytes = 64;

    public static PackedContent Pack(ReadOnlySpan<byte> content)
    {
        if (content.Length < MinBytes) return new PackedContent(content.ToArray(), null);

        var buffer = ArrayPool<byte>.Shared.Rent(BrotliEncoder.GetMaxCompressedLength(content.Length));
        try
        {
            return BrotliEncoder.TryCompress(content, buffer, out var written, Quality, Window) && written < content.Length
                ? new PackedContent(buffer.AsSpan(0, written).ToArray(), Brotli)
                : new PackedContent(content.ToArray(), null);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// The content, which must be exactly <paramref name="contentLength"/> bytes. Memory grows with
    /// what the bytes really hold, not with the length a stored header claims.
    /// </summary>
    /// <exception cref="CryptographicException">An unknown encoding, or bytes that do not give the recorded length.</exception>
    public static byte[] Unpack(string? encoding, byte[] bytes, int contentLength)
    {
        if (encoding is null) return bytes;
        if (encoding != Brotli) throw new CryptographicException($"Recorded content has an unknown encoding '{encoding}'.");
        if (contentLength < 0) throw new CryptographicException("Recorded content has a negative length.");

        var content = new byte[Math.Min(contentLength, 16 * bytes.Length + 4096)];
        using var decoder = new BrotliDecoder();
        var (read, written) = (0, 0);
        while (true)
        {
            var status = decoder.Decompress(bytes.AsSpan(read), content.AsSpan(written), out var consumed, out var produced);
            (read, written) = (read + consumed, written + produced);
            switch (status)
            {
                case OperationStatus.Done when written == contentLength && read == bytes.Length:
                    return content;
                case OperationStatus.DestinationTooSmall when content.Length < contentLength:
                    Array.Resize(ref content, (int)Math.Min(contentLength, 2L * content.Length));
                    continue;
                default:
                    throw new CryptographicException("Recorded content does not decompress to its recorded length.");
            }
        }
    }
}
