using System.Globalization;
using Microsoft.Extensions.Primitives;

namespace PamEventStore.Http;

/// <summary>
/// Offsets, counts and sequences as a request gives them: exactly one value of decimal digits, no sign,
/// no spaces. Model binding would read "abc" or "-1" as 0 and act on the wrong place.
/// </summary>
public static class WholeNumber
{
    public static bool TryParse(StringValues values, out long value)
    {
        value = 0;
        // long.TryParse passes over trailing NULs even with NumberStyles.None.
        return values is [{ Length: > 0 } text] && text.All(char.IsAsciiDigit)
               && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    /// <returns>False when the query holds <paramref name="name"/> but not as one whole number; <paramref name="value"/> is null when it is absent.</returns>
    public static bool TryRead(IQueryCollection query, string name, out long? value)
    {
        value = null;
        if (!query.TryGetValue(name, out var values)) return true;
        if (!TryParse(values, out var parsed)) return false;
        value = parsed;
        return true;
    }
}
