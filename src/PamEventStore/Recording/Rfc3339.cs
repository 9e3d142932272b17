namespace PamEventStore.Recording;

/// <summary>
/// The timestamps Go's time.Time marshals: <c>2026-04-07T12:34:56.123456789+02:00</c>, up to nine
/// fractional digits, <c>Z</c> or a numeric offset. Read by hand: a terminal batch carries one per
/// keystroke, and a regex plus DateTimeOffset.Parse cost more than the rest of the event.
/// </summary>
public static class Rfc3339
{
    public static bool TryParse(ReadOnlySpan<char> text, out DateTimeOffset value)
    {
        value = default;
        if (text.Length < 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' || text[16] != ':') return false;
        if (!Digits(text, 0, 4, out var year) || !Digits(text, 5, 2, out var month) || !Digits(text, 8, 2, out var day)
            || !Digits(text, 11, 2, out var hour) || !Digits(text, 14, 2, out var minute) || !Digits(text, 17, 2, out var second))
        {
            return false;
        }

        var at = 19;
        long fractionTicks = 0;
        if (text[at] == '.')
        {
            var start = ++at;
            while (at < text.Length && char.IsAsciiDigit(text[at])) at++;
            var digits = at - start;
            if (digits is 0 or > 9) return false;

            // .NET keeps 100 ns ticks: the eighth and ninth digits are dropped from the value (the
            // canonical form keeps the text exactly as recorded).
            for (var i = 0; i < 7; i++) fractionTicks = fractionTicks * 10 + (i < digits ? text[start + i] - '0' : 0);
        }

        TimeSpan offset;
        if (at == text.Length - 1 && text[at] == 'Z')
        {
            offset = TimeSpan.Zero;
        }
        else if (at == text.Length - 6 && text[at] is '+' or '-' && text[at + 3] == ':'
                 && Digits(text, at + 1, 2, out var offsetHours) && Digits(text, at + 4, 2, out var offsetMinutes) && offsetHours < 24 && offsetMinutes < 60)
        {
            offset = new TimeSpan(offsetHours, offsetMinutes, 0) * (text[at] == '-' ? -1 : 1);
        }
        else
        {
            return false;
        }

        if (month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(Math.Max(year, 1), month) || hour > 23 || minute > 59 || second > 59 || year < 1) return false;

        try
        {
            value = new DateTimeOffset(year, month, day, hour, minute, second, offset).AddTicks(fractionTicks);
            return true;
        }
        catch (ArgumentOutOfRangeException)
        {
            // Year 1 or 9999 with an offset that leaves the representable range.
            return false;
        }
    }

    private static bool Digits(ReadOnlySpan<char> text, int start, int count, out int value)
    {
        value = 0;
        for (var i = start; i < start + count; i++)
        {
            if (!char.IsAsciiDigit(text[i])) return false;
            value = value * 10 + (text[i] - '0');
        }

        return true;
    }
}
