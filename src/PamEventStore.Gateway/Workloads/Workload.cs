using PamEventStore.Gateway.Recording;

namespace PamEventStore.Gateway.Workloads;

/// <summary>What a user does in a session, recorded as the gateway would record it.</summary>
public abstract class Workload(int seed, DateTimeOffset start)
{
    /// <summary>An event waiting for its time: <see cref="Write"/> gets the timestamp and the seconds since the session started.</summary>
    protected sealed record UnstampedEvent(int EstimatedBytes, Func<DateTimeOffset, double, byte[]> Write);

    private double _elapsed;

    protected Random Random { get; } = new(seed);

    public abstract string ResourceType { get; }

    /// <summary>
    /// Records about <paramref name="targetBytes"/> of events (JSON) into <paramref name="file"/>,
    /// whole activities at a time, spread evenly over the next <paramref name="duration"/> of session time.
    /// </summary>
    public void Record(RecordingFile file, int targetBytes, TimeSpan duration)
    {
        var pending = new List<UnstampedEvent>();
        var estimated = 0;
        while (estimated < targetBytes)
        {
            foreach (var e in NextActivity())
            {
                pending.Add(e);
                estimated += e.EstimatedBytes;
            }
        }

        var step = duration.TotalSeconds / pending.Count;
        foreach (var e in pending)
        {
            _elapsed += step;
            file.Append(e.Write(start.AddSeconds(_elapsed), Math.Round(_elapsed, 6)));
        }
    }

    /// <summary>One thing the user does (a command and its result), as events waiting for their time.</summary>
    protected abstract IEnumerable<UnstampedEvent> NextActivity();
}
