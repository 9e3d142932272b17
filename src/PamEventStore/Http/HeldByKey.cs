namespace PamEventStore.Http;

/// <summary>
/// What each key (a gateway, an org) holds of a limit it shares with others, forgetting a key once it
/// holds nothing. Not thread-safe: its owner counts under its own lock, with whatever else it decides there.
/// </summary>
public sealed class HeldByKey
{
    private readonly Dictionary<string, long> _held = new(StringComparer.Ordinal);

    public long Of(string key) => _held.GetValueOrDefault(key);

    public void Add(string key, long amount) => _held[key] = Of(key) + amount;

    /// <summary>Gives <paramref name="amount"/> back (an empty share given back after the rest is no error).</summary>
    public void Remove(string key, long amount)
    {
        var left = Of(key) - amount;
        if (left <= 0) _held.Remove(key);
        else _held[key] = left;
    }
}
