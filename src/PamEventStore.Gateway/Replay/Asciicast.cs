using System.Text.Json;

namespace PamEventStore.Gateway.Replay;

/// <summary>One line of an asciicast: seconds since the start, the code (o output, i input, r resize, m marker) and its data.</summary>
public sealed record CastEvent(double Time, string Code, string Data);

/// <summary>
/// An asciinema recording, format v2 (https://docs.asciinema.org/manual/asciicast/v2/): a JSON header
/// line, then one JSON array per event.
/// </summary>
public sealed record Asciicast(int Width, int Height, IReadOnlyList<CastEvent> Events)
{
    public static Asciicast Read(TextReader reader)
    {
        var headerLine = reader.ReadLine() ?? throw new FormatException("The asciicast is empty.");
        using var header = JsonDocument.Parse(headerLine);
        if (!header.RootElement.TryGetProperty("version", out var version) || version.GetInt32() != 2)
            throw new FormatException("Only asciicast version 2 is supported.");

        var events = new List<CastEvent>();
        var lineNumber = 1;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var e = JsonDocument.Parse(line);
            var item = e.RootElement;
            if (item.ValueKind != JsonValueKind.Array || item.GetArrayLength() < 3)
                throw new FormatException($"Line {lineNumber} is not an event [time, code, data].");
            events.Add(new CastEvent(item[0].GetDouble(), item[1].GetString()!, item[2].GetString()!));
        }

        return new Asciicast(
            header.RootElement.TryGetProperty("width", out var width) ? width.GetInt32() : 80,
            header.RootElement.TryGetProperty("height", out var height) ? height.GetInt32() : 24,
            events);
    }
}
