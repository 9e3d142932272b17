using System.CommandLine;
using PamEventStore.Gateway.Client;
using PamEventStore.Gateway.Replay;
using PamEventStore.Gateway.Simulation;
using PamEventStore.Gateway.Watching;

// pam-gateway: a gateway simulator and reference client for PamEventStore.
//   dotnet run --project src/PamEventStore.Gateway -- simulate --gateways 2 --sessions 5 --duration 60s
//   dotnet run --project src/PamEventStore.Gateway -- replay --cast demo.cast --speed 2

var url = new Option<string>("--url") { Description = "The service", DefaultValueFactory = _ => "http://127.0.0.1:5080" };
url.Validators.Add(result =>
{
    if (!Uri.TryCreate(result.GetValueOrDefault<string>(), UriKind.Absolute, out var address) || address.Scheme is not ("http" or "https"))
        result.AddError("--url must be the service's absolute http(s) address, e.g. http://127.0.0.1:5080.");
    else if (address.AbsolutePath != "/")
        result.AddError("--url is the service's root (its paths start with /api/v1/pam/sessions), without a path of its own.");
});
var org = new Option<string>("--org") { Description = "Organisation (tenant) to work in", DefaultValueFactory = _ => "acme" };
var signingKeyFile = new Option<FileInfo>("--signing-key-file")
{
    Description = "The service's HS256 token key (base64), to mint gateway and platform tokens",
    DefaultValueFactory = _ => new FileInfo(Path.Combine("src", "PamEventStore", ".pamstore", "token-signing.key")),
};
var signingKey = new Option<string?>("--signing-key") { Description = "The key itself (base64), instead of --signing-key-file" };

var gateways = new Option<int>("--gateways") { Description = "Concurrent gateways", DefaultValueFactory = _ => 2 };
var sessions = new Option<int>("--sessions") { Description = "Sessions per gateway", DefaultValueFactory = _ => 5 };
var kind = new Option<string>("--kind") { Description = "terminal (SSH) or sql (database command logs)", DefaultValueFactory = _ => "terminal" };
var interval = new Option<TimeSpan>("--interval") { Description = "Flush interval per session (500ms, 10s, 2m)", DefaultValueFactory = _ => TimeSpan.FromSeconds(10), CustomParser = Duration };
var duration = new Option<TimeSpan>("--duration") { Description = "How long to run (500ms, 10s, 2m)", DefaultValueFactory = _ => TimeSpan.FromMinutes(1), CustomParser = Duration };
var batchBytes = new Option<int>("--batch-bytes") { Description = "Recorded JSON per session per interval", DefaultValueFactory = _ => 4096 };
foreach (var count in new[] { gateways, sessions, batchBytes })
{
    count.Validators.Add(result =>
    {
        if (result.GetValueOrDefault<int>() <= 0) result.AddError($"{count.Name} must be a positive number.");
    });
}

var infisical = new Option<bool>("--infisical") { Description = "Behave exactly like an Infisical gateway: no endOffset" };
kind.AcceptOnlyFromAmong("terminal", "sql");

var cast = new Option<FileInfo>("--cast") { Description = "An asciicast file (version 2 or 3)", Required = true };
cast.AcceptExistingOnly();
var speed = new Option<double>("--speed") { Description = "Playback speed", DefaultValueFactory = _ => 1.0 };
speed.Validators.Add(result =>
{
    if (result.GetValueOrDefault<double>() is not (>= 0.001 and <= 1000)) result.AddError("--speed must be between 0.001 and 1000, e.g. 2 for twice as fast.");
});
var gatewayId = new Option<string>("--gateway") { Description = "Gateway id", DefaultValueFactory = _ => "gw-1" };

var simulate = new Command("simulate", "Run gateways that record sessions and upload a batch per session every interval")
{
    url, org, signingKeyFile, signingKey, gateways, sessions, kind, interval, duration, batchBytes, infisical,
};
simulate.SetAction(async (parse, ct) =>
{
    using var http = new HttpClient { BaseAddress = new Uri(parse.GetValue(url)!) };
    var fleet = new GatewayFleet(new PamApiClient(http), Tokens(parse), new FleetOptions
    {
        OrgId = parse.GetValue(org)!,
        Gateways = parse.GetValue(gateways),
        SessionsPerGateway = parse.GetValue(sessions),
        Kind = parse.GetValue(kind)!,
        Interval = parse.GetValue(interval),
        Duration = parse.GetValue(duration),
        BatchBytes = parse.GetValue(batchBytes),
        SendEndOffset = !parse.GetValue(infisical),
    });
    var report = await fleet.RunAsync(Console.WriteLine, ct);
    Console.WriteLine($"{report.Uploads} uploads from {report.Sessions} sessions in {report.Elapsed.TotalSeconds:0.0} s ({report.UploadsPerSecond:0.0}/s), " +
                      $"{report.Duplicates} duplicates, {report.FailureCount} failed {string.Join(" ", report.Failures.Select(f => $"[{(f.Key == 0 ? "no answer" : f.Key)}: {f.Value}]"))}");
    Console.WriteLine($"latency p50 {report.Latency.Percentile(50):0.0} ms, p99 {report.Latency.Percentile(99):0.0} ms; largest flush lag {report.MaxLag.TotalMilliseconds:0} ms");
    if (report.NotEnded > 0) Console.WriteLine($"{report.NotEnded} sessions left open: their final upload or their end failed (what was not sent is kept)");
    if (report.EndedWithoutFinalUpload > 0) Console.WriteLine($"{report.EndedWithoutFinalUpload} sessions ended without their final upload, which the service refused");
    return report.FailureCount == 0 && report.NotEnded == 0 && report.EndedWithoutFinalUpload == 0 ? 0 : 1;
});

var replay = new Command("replay", "Play an asciicast as a live SSH session through a gateway") { url, org, signingKeyFile, signingKey, cast, speed, interval, gatewayId };
replay.SetAction(async (parse, ct) =>
{
    using var http = new HttpClient { BaseAddress = new Uri(parse.GetValue(url)!) };
    Asciicast recording;
    try
    {
        using var reader = parse.GetValue(cast)!.OpenText();
        recording = Asciicast.Read(reader);
    }
    catch (FormatException e)
    {
        Console.Error.WriteLine($"{parse.GetValue(cast)!.Name}: {e.Message}");
        return 2;
    }

    try
    {
        var (sessionId, complete) = await new LiveReplay(new PamApiClient(http), Tokens(parse), parse.GetValue(org)!, parse.GetValue(gatewayId)!)
            .RunAsync(recording, parse.GetValue(speed), parse.GetValue(interval), Console.WriteLine, ct);
        Console.WriteLine(sessionId);

        // Ended without what the service refused: the session holds less than the cast, which is a failure to say.
        return complete ? 0 : 1;
    }
    catch (InvalidOperationException e)
    {
        Console.Error.WriteLine(e.Message);
        return 1;
    }
});

var sessionToWatch = new Option<Guid>("--session") { Description = "The session to follow", Required = true };
var from = new Option<long?>("--from") { Description = "The first batch to show (default: the next one stored; 0: the whole session so far)" };
var watch = new Command("watch", "Follow a session live as the service pushes it, as an auditor watches it") { url, org, signingKeyFile, signingKey, sessionToWatch, from };
watch.SetAction(async (parse, ct) =>
{
    using var http = new HttpClient { BaseAddress = new Uri(parse.GetValue(url)!), Timeout = Timeout.InfiniteTimeSpan };
    var session = parse.GetValue(sessionToWatch);
    try
    {
        var client = new PamApiClient(http);
        var reader = Tokens(parse).Platform(parse.GetValue(org)!);
        var ended = await new SessionWatch(client, reader, session).RunAsync(parse.GetValue(from), Console.Out, Console.Error.WriteLine, ct);
        if (ended is not null) return 0;

        // The stream closed without the session's end: a tail that is over has nothing more to send.
        if ((await client.GetSessionAsync(reader, session, ct)).GetProperty("status").GetString() == "ended")
        {
            Console.Error.WriteLine($"[session {session} is over: nothing more to show from there; --from 0 shows it from its start]");
            return 0;
        }

        Console.Error.WriteLine($"[the service closed the stream before session {session} ended]");
        return 1;
    }
    catch (HttpRequestException e) when (e.StatusCode is not null)
    {
        Console.Error.WriteLine(e.Message);
        return 1;
    }
});

var root = new RootCommand("pam-gateway: gateway simulator and reference client for PamEventStore") { simulate, replay, watch };
try
{
    return await root.Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e) when (e is HttpRequestException or IOException or UnauthorizedAccessException or FormatException or ArgumentException or InvalidOperationException or OverflowException
                              || (e is TaskCanceledException && e.InnerException is TimeoutException))
{
    // What the user can act on, in one line: the service unreachable or refusing, a file, a key, a value.
    Console.Error.WriteLine($"pam-gateway: {e.Message}{(e.InnerException is { } inner && !e.Message.Contains(inner.Message, StringComparison.Ordinal) ? $" ({inner.Message})" : "")}");
    return 1;
}

static TimeSpan Duration(System.CommandLine.Parsing.ArgumentResult result)
{
    var text = result.Tokens.Single().Value;
    var (number, unit) = text.EndsWith("ms") ? (text[..^2], 0.001) : text.EndsWith('s') ? (text[..^1], 1) : text.EndsWith('m') ? (text[..^1], 60) : (text, double.NaN);
    var span = double.TryParse(number, System.Globalization.CultureInfo.InvariantCulture, out var value) && !double.IsNaN(unit) && double.IsFinite(value * unit) && value * unit < TimeSpan.MaxValue.TotalSeconds
        ? TimeSpan.FromSeconds(value * unit)
        : TimeSpan.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out var parsed) ? parsed : (TimeSpan?)null;
    if (span > TimeSpan.Zero) return span.Value;
    result.AddError($"'{text}' is not a positive duration such as 500ms, 10s or 2m.");
    return default;
}

DevelopmentTokens Tokens(ParseResult parse)
{
    if (parse.GetValue(signingKey) is { } given) return KeyFrom(given, "--signing-key");
    var file = parse.GetValue(signingKeyFile)!;
    if (!file.Exists)
    {
        throw new FileNotFoundException(
            $"no token signing key at {file.FullName}: give --signing-key-file (the service writes its development key to src/PamEventStore/.pamstore/token-signing.key when it first runs) or --signing-key.");
    }

    return KeyFrom(File.ReadAllText(file.FullName), file.FullName);
}

static DevelopmentTokens KeyFrom(string base64, string source)
{
    var refusal = $"the token signing key from {source} is not the service's key (base64 of at least 32 bytes)";
    byte[] key;
    try
    {
        key = Convert.FromBase64String(base64.Trim());
    }
    catch (FormatException e)
    {
        throw new FormatException($"{refusal}: {e.Message}", e);
    }

    return key.Length >= 32 ? new DevelopmentTokens(key) : throw new FormatException($"{refusal}: it is shorter.");
}
