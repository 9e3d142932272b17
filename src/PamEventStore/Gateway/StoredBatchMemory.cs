using System.Security.Cryptography;
using Microsoft.Extensions.Caching.Memory;

namespace PamEventStore.Gateway;

/// <summary>
/// What this node has seen committed: the SHA-256 of the exact request bodies stored at recent
/// offsets of sessions, with the gateway each session belongs to. A stored batch never changes, so a
/// body seen stored at an offset is a duplicate there forever: an exact retry (the gateway re-reads the
/// same bytes from its file) is answered without a database round trip or a lock. Anything not
/// remembered (another node stored it, it was evicted, the bytes differ) goes the full way through the
/// session aggregate.
/// </summary>
public sealed class StoredBatchMemory : IDisposable
{
    /// <summary>Offsets remembered across all sessions, least recently used evicted: ~150 bytes each.</summary>
    public const int Offsets = 100_000;

    private static readonly MemoryCacheEntryOptions EntryOptions = new() { Size = 1, SlidingExpiration = TimeSpan.FromMinutes(30) };

    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = Offsets, CompactionPercentage = 0.1 });

    private sealed record StoredBodies(string GatewayId, byte[][] Sha256s);

    public static byte[] BodyHash(ReadOnlySpan<byte> body) => SHA256.HashData(body);

    /// <summary>True when exactly this body is known to be stored at this offset of the gateway's session.</summary>
    public bool IsStored(string orgId, Guid sessionId, string gatewayId, long startOffset, byte[] bodySha256) =>
        _cache.TryGetValue((orgId, sessionId, startOffset), out StoredBodies? stored)
        && stored!.GatewayId == gatewayId
        && stored.Sha256s.Any(sha => sha.AsSpan().SequenceEqual(bodySha256));

    /// <summary>Call only once the body's content is committed at that offset (accepted, or found there).</summary>
    public void RememberStored(string orgId, Guid sessionId, string gatewayId, long startOffset, byte[] bodySha256)
    {
        var key = (orgId, sessionId, startOffset);

        // Several bodies at one offset only when a re-upload extended the stored batch: rare, tiny.
        var bodies = _cache.TryGetValue(key, out StoredBodies? known) && known!.GatewayId == gatewayId
            ? known.Sha256s.Any(sha => sha.AsSpan().SequenceEqual(bodySha256)) ? known.Sha256s : [.. known.Sha256s, bodySha256]
            : [bodySha256];
        _cache.Set(key, new StoredBodies(gatewayId, bodies), EntryOptions);
    }

    public void Dispose() => _cache.Dispose();
}
