using System.IO.Compression;
using System.Security.Cryptography;

namespace PamEventStore.Crypto;

/// <summary>
/// Recorded content as it is sealed: compressed with raw DEFLATE (<see cref="Deflate"/>, RFC 1951) when
/// that makes it smaller, as it is otherwise (<see cref="Encoding"/> null). Recordings are JSON
/// (terminal output, queries and their results) and compress to under a third of their size, which is
/// what a recording costs on disk and in WAL for as long as it is kept. Compressing happens before
/// encryption, since ciphertext does not compress; the encoding is bound into the ciphertext's
/// associated data, so it cannot be switched on a stored batch without the batch failing to open.
/// DEFLATE at its fastest level rather than Brotli at quality 1: Brotli stores a batch a sixth smaller
/// at the same upload rate, but takes 60% longer to read one back (12 against 7.6 µs for 5.8 KB), and
/// a log page reads a hundred: measured in the benchmark, Brotli's log pages came out at 2.8-3.25 of
/// the raw select in three full runs, over the target of 3 in two.
/// </summary>
/// <remarks>
/// Compression makes a ciphertext's length depend on how well its content compresses, which a reader
/// of the database sees (the CRIME/BREACH family of attacks): someone who can put text into what a
/// session shows (a table row, a ticket comment, a log line) and read the stored lengths can learn
/// whether that text repeats something else in the same batch, such as a secret printed beside it, one
/// guess per batch. Without compression such a reader learns only each batch's length. Where that
/// matters more than the storage, <c>Uploads:CompressContent=false</c> stores content as it is.
/// </remarks>
public sealed record PackedContent(byte[] Bytes, string? Encoding)
{
    /// <summary>Raw DEFLATE, without zlib's or gzip's framing (as the Compression Streams standard names it).</summary>
    public const string Deflate = "deflate-raw";

    /// <summary>Content this short is not worth compressing.</summary>
    private const int MinBytes = 64;

    /// <param name="compress">False: the content as it is (<c>Uploads:CompressContent</c>).</param>
    public static PackedContent Pack(ReadOnlySpan<byte> content, bool compress = true)
    {
        if (!compress || content.Length < MinBytes) return new PackedContent(content.ToArray(), null);

        var packed = new MemoryStream(content.Length / 2);
        using (var deflate = new DeflateStream(packed, CompressionLevel.Fastest, leaveOpen: true)) deflate.Write(content);
        return packed.Length < content.Length
            ? new PackedContent(packed.ToArray(), Deflate)
            : new PackedContent(content.ToArray(), null);
    }

    /// <summary>
    /// The content, which must be exactly <paramref name="contentLength"/> bytes. Memory grows with
    /// what the bytes really hold, not with the length a stored header claims.
    /// </summary>
    /// <exception cref="CryptographicException">An unknown encoding, or bytes that do not give the recorded length.</exception>
    public static byte[] Unpack(string? encoding, byte[] bytes, int contentLength)
    {
        if (encoding is null) return bytes;
        if (encoding != Deflate) throw new CryptographicException($"Recorded content has an unknown encoding '{encoding}'.");
        if (contentLength < 0) throw new CryptographicException("Recorded content has a negative length.");

        try
        {
            using var deflate = new DeflateStream(new MemoryStream(bytes, writable: false), CompressionMode.Decompress);
            var content = new byte[(int)Math.Min(contentLength, 16L * bytes.Length + 4096)];
            var read = 0;
            while (true)
            {
                read += deflate.ReadAtLeast(content.AsSpan(read), content.Length - read, throwOnEndOfStream: false);
                if (read < content.Length || content.Length == contentLength) break;
                Array.Resize(ref content, (int)Math.Min(contentLength, 2L * content.Length));
            }

            // Exactly the recorded length: not cut short, and nothing after it.
            if (read == contentLength && deflate.Read(stackalloc byte[1]) == 0) return content;
        }
        catch (InvalidDataException)
        {
        }

        throw new CryptographicException("Recorded content does not decompress to its recorded length.");
    }
}
