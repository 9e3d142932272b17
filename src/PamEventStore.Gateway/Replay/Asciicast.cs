using System.Text.Json;

namespace PamEventStore.Gateway.Replay;

/// <summary>One line of an asciicast: seconds since the start, the code (o output, i input, r resize, m marker, x exit) and its data.</summary>
public sealed record CastEvent(double Time, string Code, string Data);

/// <summary>
/// An asciinema recording: a JSON header line, then one JSON array per event. Version 2
/// (https://docs.asciinema.org/manual/asciicast/v2/) gives each event's time since the start; version 3
/// (https://docs.asciinema.org/manual/asciicast/v3/, what <c>asciinema rec</c> writes since 3.0) the time
/// since the event before, and allows <c>#</c> comment lines. Either is read as times since the start.
/// </summary>
public sealed record Asciicast(int Width, int Height, IReadOnlyList<CastEvent> Events)
{
    /// <summary>The latest an event may come into a recording: a year, far past any session, and a time any speed can still play.</summary>
    public const double MaxSeconds = 365 * 24 * 3600;

    /// <exception cref="FormatException">The text is not an asciicast of version 2 or 3: which line, and why.</exception>
    public static Asciicast Read(TextReader reader)
    {
        var lineNumber = 1;
        try
        {
            var headerLine = reader.ReadLine() ?? throw new FormatException("The asciicast is empty.");
            using var header = JsonDocument.Parse(headerLine);
            var root = header.RootElement;
            var version = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("version", out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : 0;
            if (version is not (2 or 3)) throw new FormatException("Only asciicast versions 2 and 3 are supported.");
            var (width, height) = version == 2
                ? (Dimension(root, "width", 80), Dimension(root, "height", 24))
                : root.TryGetProperty("term", out var term) && term.ValueKind == JsonValueKind.Object
                    ? (Dimension(term, "cols", 80), Dimension(term, "rows", 24))
                    : (80, 24);

            var events = new List<CastEvent>();
            var time = 0.0;
            while (reader.ReadLine() is { } line)
            {
                lineNumber++;
                if (string.IsNullOrWhiteSpace(line) || (version == 3 && line.StartsWith('#'))) continue;
                using var e = JsonDocument.Parse(line);
                var item = e.RootElement;
                if (item.ValueKind != JsonValueKind.Array || item.GetArrayLength() < 3
                    || item[0].ValueKind != JsonValueKind.Number || item[1].ValueKind != JsonValueKind.String || item[2].ValueKind != JsonValueKind.String)
                {
                    throw new FormatException("it is not an event [time, code, data] (a number and two strings).");
                }

                var at = item[0].GetDouble();
                if (!double.IsFinite(at) || at < 0) throw new FormatException("its time is negative.");
                time = version == 2 ? at : time + at;
                if (version == 2 && events.Count > 0 && time < events[^1].Time) throw new FormatException("its time is before the event before it.");
                if (time > MaxSeconds) throw new FormatException($"its time is past {MaxSeconds:0} s (a year) into the recording.");
                events.Add(new CastEvent(time, item[1].GetString()!, item[2].GetString()!));
            }

            return new Asciicast(width, height, events);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            // A cast cut short, a line that is not JSON, a string that is no text (a lone surrogate).
            throw new FormatException(lineNumber == 1 && e is FormatException ? e.Message : $"Line {lineNumber}: {e.Message}", e);
        }
    }

    private static int Dimension(JsonElement element, string name, int fallback) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var n) && n > 0 ? n : fallback;
}
