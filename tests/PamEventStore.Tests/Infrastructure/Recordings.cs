using System.Text;

namespace PamEventStore.Tests.Infrastructure;

/// <summary>Recorded events as an Infisical gateway marshals them (Go's encoding/json).</summary>
public static class Recordings
{
    private static readonly DateTimeOffset Start = new(2026, 12, 4, 10, 0, 0, TimeSpan.FromHours(2));

    private static string Timestamp(int second) => Start.AddSeconds(second).ToString("yyyy-MM-dd'T'HH:mm:ss'.123456789'zzz");

    /// <summary>An SSH terminal event carrying <paramref name="text"/> at second <paramref name="second"/>.</summary>
    public static string Terminal(int second, string text, string eventType = "output") =>
        $$"""{"timestamp":"{{Timestamp(second)}}","eventType":"{{eventType}}","channelType":"terminal","data":"{{Convert.ToBase64String(Encoding.UTF8.GetBytes(text))}}","elapsedTime":{{second}}.25}""";

    /// <summary>A SQL command log entry.</summary>
    public static string Query(int second, string input, string output = "OK") =>
        $$"""{"timestamp":"{{Timestamp(second)}}","input":"{{input}}","output":"{{output}}"}""";

    /// <summary>A Kubernetes API request.</summary>
    public static string HttpRequest(int second, string requestId, string url) =>
        $$"""{"timestamp":"{{Timestamp(second)}}","eventType":"request","requestId":"{{requestId}}","headers":{"Accept":["application/json"]},"method":"GET","url":"{{url}}"}""";

    public static string HttpResponse(int second, string requestId, string status = "200 OK", string body = "{}") =>
        $$"""{"timestamp":"{{Timestamp(second)}}","eventType":"response","requestId":"{{requestId}}","headers":null,"status":"{{status}}","body":"{{Convert.ToBase64String(Encoding.UTF8.GetBytes(body))}}"}""";

    public static string Batch(params string[] events) => "[" + string.Join(",", events) + "]";

    /// <summary>A SQL session's command log: <paramref name="count"/> queries "{prefix} 0", "{prefix} 1", ...</summary>
    public static string Queries(int count, string prefix = "select") => Batch(Enumerable.Range(0, count).Select(i => Query(i, $"{prefix} {i}")).ToArray());

    /// <summary>A batch of terminal output lines numbered from <paramref name="first"/>.</summary>
    public static string Lines(int first, int count) =>
        Batch(Enumerable.Range(first, count).Select(i => Terminal(i, $"line {i}\r\n")).ToArray());
}
