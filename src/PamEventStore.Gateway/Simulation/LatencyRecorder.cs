namespace PamEventStore.Gateway.Simulation;

/// <summary>Collects request latencies (milliseconds) from many concurrent callers.</summary>
public sealed class LatencyRecorder
{
    private readonly List<double> _milliseconds = [];

    public void Record(TimeSpan latency)
    {
        lock (_milliseconds) _milliseconds.Add(latency.TotalMilliseconds);
    }

    public int Count
    {
        get
        {
            lock (_milliseconds) return _milliseconds.Count;
        }
    }

    /// <summary>The value below which <paramref name="percent"/>% of the latencies fall (nearest rank).</summary>
    public double Percentile(double percent)
    {
        double[] sorted;
        lock (_milliseconds) sorted = _milliseconds.Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        var rank = (int)Math.Ceiling(percent / 100 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }
}
