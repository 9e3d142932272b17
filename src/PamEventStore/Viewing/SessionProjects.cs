using Microsoft.Extensions.Caching.Memory;

namespace PamEventStore.Viewing;

/// <summary>
/// The project of each session this node has served recently (in memory only). A session's project
/// is fixed when it is created and never changes, so a reader can be authorised for it before its
/// recording is read, without a query of its own.
/// </summary>
public sealed class SessionProjects : IDisposable
{
    /// <summary>Sessions remembered, least recently used evicted: ~200 bytes each.</summary>
    public const int Entries = 100_000;

    private static readonly MemoryCacheEntryOptions EntryOptions = new() { Size = 1, SlidingExpiration = TimeSpan.FromMinutes(30) };

    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = Entries, CompactionPercentage = 0.1 });

    public string? ProjectOf(string orgId, Guid sessionId) => _cache.TryGetValue((orgId, sessionId), out string? projectId) ? projectId : null;

    public string Remember(string orgId, Guid sessionId, string projectId) => _cache.Set((orgId, sessionId), projectId, EntryOptions);

    public void Dispose() => _cache.Dispose();
}
