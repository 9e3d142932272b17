using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PamEventStore.Recording;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Recording;

/// <summary>
/// The strict reader of the gateway's recorded-event JSON and the canonical form it writes. Pure: no host,
/// no database.
/// </summary>
public sealed class when_parsing_recorded_events
{
    private const string T = "2026-04-07T12:34:56.123456789+02:00";

    private const string Command = $$"""{"timestamp":"{{T}}","input":"SELECT 1","output":"1 row"}""";
    private const string Output = $$"""{"timestamp":"{{T}}","eventType":"output","channelType":"terminal","data":"aGkK","elapsedTime":1.5}""";
    private const string Request = $$"""{"timestamp":"{{T}}","requestId":"r-1","eventType":"request","headers":{"Accept":["application/json"]},"method":"GET","url":"/api/v1/pods"}""";
    private const string Response = $$"""{"timestamp":"{{T}}","requestId":"r-1","eventType":"response","headers":null,"status":"200 OK","body":"e30="}""";

    private static RecordingBatch Parse(string json)
    {
        var ok = RecordingParser.TryParseBatch(Encoding.UTF8.GetBytes(json), out var batch, out var error);
        ok.ShouldBeTrue($"refused: {error}");
        return batch!;
    }

    private static RecordingBatch ParseLegacy(string json)
    {
        var ok = RecordingParser.TryParseLegacyLogs(Encoding.UTF8.GetBytes(json), out var batch, out var error);
        ok.ShouldBeTrue($"refused: {error}");
        return batch!;
    }

    private static string Canonical(RecordingBatch batch) => Encoding.UTF8.GetString(batch.Canonical.Span);

    private static string Canonical(string json) => Canonical(Parse(json));

    private static RecordingError Refused(string json)
    {
        var ok = RecordingParser.TryParseBatch(Encoding.UTF8.GetBytes(json), out var batch, out var error);
        ok.ShouldBeFalse();
        batch.ShouldBeNull();
        return error!;
    }

    private static RecordingError RefusedLegacy(string json)
    {
        var ok = RecordingParser.TryParseLegacyLogs(Encoding.UTF8.GetBytes(json), out var batch, out var error);
        ok.ShouldBeFalse();
        batch.ShouldBeNull();
        return error!;
    }

    private static void ShouldBeRefusedAt(string json, int index, string? field)
    {
        var error = Refused(json);
        error.Index.ShouldBe(index);
        error.Field.ShouldBe(field);
        error.Message.ShouldContain($"event {index}");
    }

    private static void ShouldBeRefusedAsABody(RecordingError error, string? field = null)
    {
        error.Index.ShouldBeNull();
        error.Field.ShouldBe(field);
        error.Message.ShouldNotBeNullOrWhiteSpace();
    }

    private static string SessionEventWithData(string data) =>
        $$"""[{"timestamp":"{{T}}","eventType":"output","data":"{{data}}","elapsedTime":1}]""";

    // ---- the three shapes, in canonical form ----

    [Fact]
    public void a_command_log_is_written_with_its_fields_in_canonical_order()
    {
        var batch = Parse($$"""[{"output":"1 row","input":"SELECT 1","timestamp":"{{T}}"}]""");

        Canonical(batch).ShouldBe($$"""[{"timestamp":"{{T}}","input":"SELECT 1","output":"1 row"}]""");
        batch.Kind.ShouldBe(RecordedEventKind.CommandLog);
        batch.EventCount.ShouldBe(1);
    }

    [Theory]
    [InlineData("input")]
    [InlineData("output")]
    [InlineData("resize")]
    [InlineData("error")]
    [InlineData("rdp")]
    public void a_session_event_of_each_type_is_written_in_canonical_form(string eventType)
    {
        var batch = Parse($$"""[{"elapsedTime":2.25,"data":"aGkK","eventType":"{{eventType}}","timestamp":"{{T}}"}]""");

        Canonical(batch).ShouldBe($$"""[{"timestamp":"{{T}}","eventType":"{{eventType}}","data":"aGkK","elapsedTime":2.25}]""");
        batch.Kind.ShouldBe(RecordedEventKind.SessionEvent);
    }

    [Theory]
    [InlineData("terminal")]
    [InlineData("exec")]
    [InlineData("sftp")]
    [InlineData("rdp")]
    public void a_session_event_keeps_its_channel_type_after_the_event_type(string channelType)
    {
        var canonical = Canonical($$"""[{"channelType":"{{channelType}}","data":"aGkK","elapsedTime":0,"eventType":"output","timestamp":"{{T}}"}]""");

        canonical.ShouldBe($$"""[{"timestamp":"{{T}}","eventType":"output","channelType":"{{channelType}}","data":"aGkK","elapsedTime":0}]""");
    }

    [Fact]
    public void an_http_request_is_written_in_canonical_form()
    {
        var batch = Parse($$"""
            [{"url":"/api/v1/namespaces/default/pods?limit=500&watch=false","method":"GET","body":"e30=",
              "headers":{"User-Agent":["kubectl/v1.31"],"Accept":["application/json","*/*"]},
              "eventType":"request","requestId":"0b0c7d2e-5f4a-4b8e-9d51-0d6f1f0c2a11","timestamp":"{{T}}"}]
            """);

        Canonical(batch).ShouldBe(
            $$"""[{"timestamp":"{{T}}","requestId":"0b0c7d2e-5f4a-4b8e-9d51-0d6f1f0c2a11","eventType":"request","headers":{"Accept":["application/json","*/*"],"User-Agent":["kubectl/v1.31"]},"method":"GET","url":"/api/v1/namespaces/default/pods?limit=500&watch=false","body":"e30="}]""");
        batch.Kind.ShouldBe(RecordedEventKind.HttpEvent);
    }

    [Fact]
    public void an_http_response_is_written_in_canonical_form()
    {
        var canonical = Canonical($$"""[{"body":"e30=","status":"200 OK","headers":{"Content-Type":["application/json"]},"requestId":"r-1","eventType":"response","timestamp":"{{T}}"}]""");

        canonical.ShouldBe($$"""[{"timestamp":"{{T}}","requestId":"r-1","eventType":"response","headers":{"Content-Type":["application/json"]},"status":"200 OK","body":"e30="}]""");
    }

    [Fact]
    public void null_headers_and_an_absent_body_are_allowed()
    {
        var canonical = Canonical($$"""[{"timestamp":"{{T}}","eventType":"response","requestId":"r-1","headers":null,"status":"204 No Content"}]""");

        canonical.ShouldBe($$"""[{"timestamp":"{{T}}","requestId":"r-1","eventType":"response","headers":null,"status":"204 No Content"}]""");
    }

    [Fact]
    public void absent_headers_are_written_like_null_headers()
    {
        // The legacy /logs structs marshal headers with omitempty.
        var absent = Parse($$"""[{"timestamp":"{{T}}","eventType":"request","requestId":"r-1","method":"GET","url":"/"}]""");
        var explicitNull = Parse($$"""[{"timestamp":"{{T}}","eventType":"request","requestId":"r-1","headers":null,"method":"GET","url":"/"}]""");

        Canonical(absent).ShouldBe($$"""[{"timestamp":"{{T}}","requestId":"r-1","eventType":"request","headers":null,"method":"GET","url":"/"}]""");
        absent.Sha256().ShouldBe(explicitNull.Sha256());
    }

    [Fact]
    public void requests_and_responses_share_one_batch()
    {
        var batch = Parse($"[{Request},{Response}]");

        batch.Kind.ShouldBe(RecordedEventKind.HttpEvent);
        batch.EventCount.ShouldBe(2);
    }

    [Fact]
    public void header_names_are_sorted_ordinally_and_their_values_keep_their_order()
    {
        var canonical = Canonical($$"""[{"timestamp":"{{T}}","eventType":"request","requestId":"r-1","headers":{"b":["1"],"Content-Type":["text/plain"],"a":["z","y"],"B":[],"X-Trace":["2","1"]},"method":"GET","url":"/"}]""");

        canonical.ShouldContain("""
            "headers":{"B":[],"Content-Type":["text/plain"],"X-Trace":["2","1"],"a":["z","y"],"b":["1"]}
            """);
    }

    [Fact]
    public void an_empty_headers_object_stays_an_empty_object()
    {
        Canonical($$"""[{"timestamp":"{{T}}","eventType":"request","requestId":"r-1","headers":{},"method":"GET","url":"/"}]""")
            .ShouldContain("\"headers\":{},");
    }

    [Fact]
    public void whitespace_between_tokens_does_not_matter()
    {
        var pretty = $$"""
            [
              {
                "timestamp" : "{{T}}",
                "input"     : "SELECT 1",
                "output"    : "1 row"
              } ,
              { "timestamp":"{{T}}",	"input":"SELECT 2", "output":"1 row" }
            ]

            """;

        Canonical(pretty).ShouldBe($$"""[{{Command}},{"timestamp":"{{T}}","input":"SELECT 2","output":"1 row"}]""");
    }

    [Fact]
    public void null_data_is_written_as_an_empty_base64_string()
    {
        var canonical = Canonical($$"""[{"timestamp":"{{T}}","eventType":"output","data":null,"elapsedTime":3}]""");

        canonical.ShouldBe($$"""[{"timestamp":"{{T}}","eventType":"output","data":"","elapsedTime":3}]""");
    }

    [Theory]
    [InlineData("2026-04-07T12:34:56Z", "2026-04-07T12:34:56.0000000+00:00")]
    [InlineData("2026-04-07T12:34:56.1-07:00", "2026-04-07T12:34:56.1000000-07:00")]
    [InlineData("2026-04-07T12:34:56.12345678Z", "2026-04-07T12:34:56.1234567+00:00")]
    [InlineData("2026-04-07T12:34:56.123456789+02:00", "2026-04-07T12:34:56.1234567+02:00")]
    [InlineData("2026-04-07T12:34:56.000000001+05:30", "2026-04-07T12:34:56.0000000+05:30")]
    [InlineData("2026-12-31T23:59:59.999999999+14:00", "2026-12-31T23:59:59.9999999+14:00")]
    public void a_timestamp_is_kept_exactly_as_recorded(string timestamp, string parsed)
    {
        var batch = Parse($$"""[{"timestamp":"{{timestamp}}","input":"","output":""}]""");

        Canonical(batch).ShouldBe($$"""[{"timestamp":"{{timestamp}}","input":"","output":""}]""");
        batch.EarliestEventAt.ToString("o", CultureInfo.InvariantCulture).ShouldBe(parsed);
        batch.LatestEventAt.ShouldBe(batch.EarliestEventAt);
    }

    [Fact]
    public void the_earliest_and_latest_timestamps_are_taken_over_all_events_whatever_their_order()
    {
        var batch = Parse(Batch(Terminal(3, "c"), Terminal(1, "a"), Terminal(7, "g"), Terminal(2, "b")));

        batch.EarliestEventAt.ShouldBe(new DateTimeOffset(2026, 12, 4, 10, 0, 1, TimeSpan.FromHours(2)).AddTicks(1234567));
        batch.LatestEventAt.ShouldBe(new DateTimeOffset(2026, 12, 4, 10, 0, 7, TimeSpan.FromHours(2)).AddTicks(1234567));
    }

    [Fact]
    public void the_same_instant_in_another_offset_compares_equal_once_parsed()
    {
        var batch = Parse("""[{"timestamp":"2026-04-07T10:34:56Z","input":"","output":""},{"timestamp":"2026-04-07T12:34:56+02:00","input":"","output":""}]""");

        batch.EarliestEventAt.ShouldBe(batch.LatestEventAt);
    }

    [Theory]
    [InlineData("\\u0061GkK", "aGkK")]
    [InlineData("a\\/b+", "a/b+")]
    [InlineData("\\/\\/\\/\\/", "////")]
    [InlineData("", "")]
    public void base64_data_is_re_encoded_canonically(string sent, string canonical)
    {
        Canonical(SessionEventWithData(sent)).ShouldBe(SessionEventWithData(canonical));
    }

    [Fact]
    public void a_json_escaped_slash_in_an_http_body_is_accepted()
    {
        var canonical = Canonical($$"""[{"timestamp":"{{T}}","eventType":"response","requestId":"r-1","headers":null,"status":"200 OK","body":"PD94bWw\/Pg=="}]""");

        canonical.ShouldEndWith("\"body\":\"PD94bWw/Pg==\"}]");
    }

    [Fact]
    public void elapsed_time_is_written_as_the_shortest_number()
    {
        var canonical = Canonical($$"""[{"timestamp":"{{T}}","eventType":"output","data":"","elapsedTime":15e-1},{"timestamp":"{{T}}","eventType":"output","data":"","elapsedTime":2.50},{"timestamp":"{{T}}","eventType":"output","data":"","elapsedTime":1E2}]""");

        canonical.ShouldBe($$"""[{"timestamp":"{{T}}","eventType":"output","data":"","elapsedTime":1.5},{"timestamp":"{{T}}","eventType":"output","data":"","elapsedTime":2.5},{"timestamp":"{{T}}","eventType":"output","data":"","elapsedTime":100}]""");
    }

    [Fact]
    public void negative_zero_elapsed_time_is_written_as_zero()
    {
        // -0 and 0 are the same number of seconds: the canonical form must not tell them apart.
        var negativeZero = Parse($$"""[{"timestamp":"{{T}}","eventType":"output","data":"","elapsedTime":-0}]""");
        var zero = Parse($$"""[{"timestamp":"{{T}}","eventType":"output","data":"","elapsedTime":0}]""");

        Canonical(negativeZero).ShouldBe(Canonical(zero));
    }

    [Fact]
    public void unicode_text_and_html_characters_are_written_without_escapes()
    {
        var canonical = Canonical($$"""[{"timestamp":"{{T}}","input":"SELECT '<b>' && x > 1 -- é ü 日本語 ☃","output":"<ok/> & 'done'"}]""");

        canonical.ShouldBe($$"""[{"timestamp":"{{T}}","input":"SELECT '<b>' && x > 1 -- é ü 日本語 ☃","output":"<ok/> & 'done'"}]""");
    }

    [Fact]
    public void escaped_html_characters_in_the_input_are_written_unescaped()
    {
        var canonical = Canonical($$"""[{"timestamp":"{{T}}","input":"\u003cscript\u003e \u0026 \u00e9","output":""}]""");

        canonical.ShouldBe($$"""[{"timestamp":"{{T}}","input":"<script> & é","output":""}]""");
    }

    [Fact]
    public void quotes_backslashes_and_control_characters_stay_json_escaped()
    {
        var canonical = Canonical($$"""[{"timestamp":"{{T}}","input":"a\"b\\c\r\n\t","output":""}]""");

        canonical.ShouldBe($$"""[{"timestamp":"{{T}}","input":"a\"b\\c\r\n\t","output":""}]""");
    }

    [Fact]
    public void text_outside_the_basic_plane_survives_the_canonical_form()
    {
        var raw = Parse($$"""[{"timestamp":"{{T}}","input":"deploy 🚀","output":""}]""");
        var escaped = Parse($$"""[{"timestamp":"{{T}}","input":"deploy \ud83d\ude80","output":""}]""");

        using var document = JsonDocument.Parse(raw.Canonical);
        document.RootElement[0].GetProperty("input").GetString().ShouldBe("deploy 🚀");
        raw.Sha256().ShouldBe(escaped.Sha256());
    }

    // ---- hashes ----

    [Fact]
    public void the_hash_is_the_sha256_of_the_canonical_bytes()
    {
        var batch = Parse(Lines(0, 3));

        batch.Sha256().ShouldBe(SHA256.HashData(batch.Canonical.Span));
    }

    [Theory]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:56.5+02:00","eventType":"output","channelType":"terminal","data":"a/b+","elapsedTime":1.5},{"timestamp":"2026-04-07T12:34:57+02:00","eventType":"input","data":"","elapsedTime":2}]""")]
    [InlineData("""[{"elapsedTime":1.5,"data":"a/b+","channelType":"terminal","eventType":"output","timestamp":"2026-04-07T12:34:56.5+02:00"},{"data":"","elapsedTime":2,"timestamp":"2026-04-07T12:34:57+02:00","eventType":"input"}]""")]
    [InlineData("""[ { "timestamp" : "2026-04-07T12:34:56.5+02:00" , "eventType" : "output" , "channelType" : "terminal" , "data" : "a\/b+" , "elapsedTime" : 1.50 } ,"""
        + "\r\n\t"
        + """{ "timestamp" : "2026-04-07T12:34:57+02:00" , "eventType" : "input" , "data" : null , "elapsedTime" : 2.0 } ]""")]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:56.5+02:00","eventType":"\u006futput","channelType":"termin\u0061l","data":"\u0061\/b+","elapsedTime":15e-1},{"timestamp":"2026-04-07T12:34:57+02:00","eventType":"input","data":"","elapsedTime":20E-1}]""")]
    public void events_that_differ_only_cosmetically_have_the_same_hash(string variant)
    {
        const string reference = """[{"timestamp":"2026-04-07T12:34:56.5+02:00","eventType":"output","channelType":"terminal","data":"a/b+","elapsedTime":1.5},{"timestamp":"2026-04-07T12:34:57+02:00","eventType":"input","data":"","elapsedTime":2}]""";

        Parse(variant).Sha256().ShouldBe(Parse(reference).Sha256());
        Canonical(variant).ShouldBe(Canonical(reference));
    }

    [Fact]
    public void http_events_with_headers_in_another_order_have_the_same_hash()
    {
        var one = Parse($$"""[{"timestamp":"{{T}}","eventType":"request","requestId":"r-1","headers":{"Accept":["*/*"],"Authorization":["[MASKED]"]},"method":"GET","url":"/"}]""");
        var other = Parse($$"""[{"url":"/","method":"GET","headers":{"Authorization":["[MASKED]"],"Accept":["*/*"]},"requestId":"r-1","eventType":"request","timestamp":"{{T}}"}]""");

        other.Sha256().ShouldBe(one.Sha256());
    }

    [Theory]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:56+02:00","input":"SELECT 2","output":"1 row"}]""")]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:56+02:00","input":"SELECT 1","output":"2 rows"}]""")]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:57+02:00","input":"SELECT 1","output":"1 row"}]""")]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:56+02:00","input":"SELECT 1 ","output":"1 row"}]""")]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:56+02:00","input":"SELECT 1","output":"1 row"},{"timestamp":"2026-04-07T12:34:56+02:00","input":"SELECT 1","output":"1 row"}]""")]
    public void a_content_difference_gives_a_different_hash(string variant)
    {
        const string reference = """[{"timestamp":"2026-04-07T12:34:56+02:00","input":"SELECT 1","output":"1 row"}]""";

        Parse(variant).Sha256().ShouldNotBe(Parse(reference).Sha256());
    }

    [Theory]
    [InlineData("2026-04-07T10:34:56Z")]
    [InlineData("2026-04-07T12:34:56.0+02:00")]
    [InlineData("2026-04-07T12:34:56.000000000+02:00")]
    public void the_same_instant_written_differently_hashes_differently_because_timestamps_are_kept_as_recorded(string sameInstant)
    {
        const string reference = """[{"timestamp":"2026-04-07T12:34:56+02:00","input":"SELECT 1","output":"1 row"}]""";
        var variant = Parse($$"""[{"timestamp":"{{sameInstant}}","input":"SELECT 1","output":"1 row"}]""");

        variant.EarliestEventAt.ShouldBe(Parse(reference).EarliestEventAt);
        variant.Sha256().ShouldNotBe(Parse(reference).Sha256());
    }

    [Fact]
    public void events_in_another_order_give_a_different_hash()
    {
        Parse(Batch(Terminal(0, "a"), Terminal(1, "b"))).Sha256()
            .ShouldNotBe(Parse(Batch(Terminal(1, "b"), Terminal(0, "a"))).Sha256());
    }

    [Theory]
    [InlineData("""{"Accept":["a","b"]}""", """{"Accept":["b","a"]}""")]
    [InlineData("""{"Accept":["a"]}""", """{"accept":["a"]}""")]
    [InlineData("""{}""", """null""")]
    public void header_differences_give_a_different_hash(string headers, string otherHeaders)
    {
        static string Event(string h) => $$"""[{"timestamp":"{{T}}","eventType":"request","requestId":"r-1","headers":{{h}},"method":"GET","url":"/"}]""";

        Parse(Event(headers)).Sha256().ShouldNotBe(Parse(Event(otherHeaders)).Sha256());
    }

    [Theory]
    [InlineData("""{"timestamp":"2026-04-07T12:34:56Z","eventType":"output","data":"aGkK","elapsedTime":1}""")]
    [InlineData("""{"timestamp":"2026-04-07T12:34:56Z","eventType":"output","channelType":"terminal","data":"aGkL","elapsedTime":1}""")]
    [InlineData("""{"timestamp":"2026-04-07T12:34:56Z","eventType":"input","channelType":"terminal","data":"aGkK","elapsedTime":1}""")]
    [InlineData("""{"timestamp":"2026-04-07T12:34:56Z","eventType":"output","channelType":"terminal","data":"aGkK","elapsedTime":1.000001}""")]
    public void a_session_event_difference_gives_a_different_hash(string variant)
    {
        const string reference = """{"timestamp":"2026-04-07T12:34:56Z","eventType":"output","channelType":"terminal","data":"aGkK","elapsedTime":1}""";

        Parse($"[{variant}]").Sha256().ShouldNotBe(Parse($"[{reference}]").Sha256());
    }

    // ---- prefixes and suffixes ----

    private static readonly string[] FiveEvents =
    [
        Terminal(4, "ls\r\n", "input"),
        Terminal(2, "total 0\r\n"),
        Terminal(9, "<é & 日本>\r\n"),
        Terminal(1, "$ "),
        Terminal(6, "exit\r\n", "input"),
    ];

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void the_prefix_hash_is_the_hash_of_the_first_events_parsed_alone(int count)
    {
        var whole = Parse(Batch(FiveEvents));
        var prefix = Parse(Batch(FiveEvents[..count]));

        whole.PrefixSha256(count).ShouldBe(prefix.Sha256());
    }

    [Fact]
    public void the_prefix_hash_of_every_event_is_the_hash_of_the_batch()
    {
        var whole = Parse(Batch(FiveEvents));

        whole.PrefixSha256(5).ShouldBe(whole.Sha256());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void skipping_events_gives_the_canonical_batch_of_the_rest(int skipped)
    {
        var rest = Parse(Batch(FiveEvents)).Skip(skipped);
        var alone = Parse(Batch(FiveEvents[skipped..]));

        Canonical(rest).ShouldBe(Canonical(alone));
        rest.Canonical.ToArray().ShouldBe(alone.Canonical.ToArray());
        rest.EventCount.ShouldBe(alone.EventCount);
        rest.EarliestEventAt.ShouldBe(alone.EarliestEventAt);
        rest.LatestEventAt.ShouldBe(alone.LatestEventAt);
        rest.Kind.ShouldBe(alone.Kind);
        rest.Sha256().ShouldBe(alone.Sha256());
    }

    [Fact]
    public void a_skipped_batch_still_knows_where_its_events_end()
    {
        var rest = Parse(Batch(FiveEvents)).Skip(1);

        rest.PrefixSha256(2).ShouldBe(Parse(Batch(FiveEvents[1..3])).Sha256());
        rest.Skip(2).Sha256().ShouldBe(Parse(Batch(FiveEvents[3..])).Sha256());
    }

    [Fact]
    public void skipping_works_for_http_events_with_sorted_headers()
    {
        var second = Request.Replace("\"Accept\"", "\"X-B\":[\"2\"],\"Accept\"");
        var rest = Parse($"[{Request},{second},{Response}]").Skip(1);

        Canonical(rest).ShouldBe(Canonical($"[{second},{Response}]"));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(6)]
    public void a_prefix_outside_the_batch_is_an_argument_error(int count)
    {
        var batch = Parse(Batch(FiveEvents));

        Should.Throw<ArgumentOutOfRangeException>(() => batch.PrefixSha256(count));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(5)]
    public void skipping_outside_the_batch_is_an_argument_error(int skipped)
    {
        var batch = Parse(Batch(FiveEvents));

        Should.Throw<ArgumentOutOfRangeException>(() => batch.Skip(skipped));
    }

    // ---- refusals of the whole body ----

    [Theory]
    [InlineData("""{}""")]
    [InlineData("""{"logs":[]}""")]
    [InlineData("\"[]\"")]
    [InlineData("42")]
    [InlineData("null")]
    public void a_body_that_is_not_a_json_array_is_refused(string body)
    {
        ShouldBeRefusedAsABody(Refused(body));
    }

    [Fact]
    public void an_empty_batch_is_refused_but_empty_legacy_logs_are_accepted()
    {
        ShouldBeRefusedAsABody(Refused("[]"));
        ShouldBeRefusedAsABody(Refused(" [ ] "));

        var legacy = ParseLegacy("""{"logs":[]}""");
        legacy.EventCount.ShouldBe(0);
        Canonical(legacy).ShouldBe("[]");
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("[")]
    [InlineData("[{")]
    [InlineData($"[{Command}")]
    [InlineData($"[{Command},]")]
    [InlineData($"[{Command},,{Command}]")]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:56Z","input":"a","output":"b",}]""")]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:56Z","input":'a',"output":"b"}]""")]
    [InlineData("""[{timestamp:"2026-04-07T12:34:56Z","input":"a","output":"b"}]""")]
    [InlineData($"[/* comment */{Command}]")]
    [InlineData("[{\"timestamp\":\"2026-04-07T12:34:56Z\",\"input\":\"tab\tinside\",\"output\":\"b\"}]")]
    public void malformed_json_is_refused(string body)
    {
        ShouldBeRefusedAsABody(Refused(body));
    }

    [Theory]
    [InlineData($"[{Command}] x")]
    [InlineData($"[{Command}][]")]
    [InlineData($"[{Command}] {Command}")]
    [InlineData($"[{Command}]]")]
    public void content_after_the_array_is_refused(string body)
    {
        ShouldBeRefusedAsABody(Refused(body));
    }

    [Fact]
    public void nesting_deeper_than_any_event_needs_is_refused()
    {
        var deep = new string('[', 40) + new string(']', 40);

        Refused($$"""[{"timestamp":"{{T}}","input":"a","output":"b","x":{{deep}}}]""").ShouldNotBeNull();
    }

    // ---- refusals of one event ----

    [Theory]
    [InlineData("[1]", 0)]
    [InlineData("[null]", 0)]
    [InlineData("[\"event\"]", 0)]
    [InlineData("[[]]", 0)]
    [InlineData($"[{Command},true]", 1)]
    [InlineData($"[{Command},{Command},[{Command}]]", 2)]
    public void an_element_that_is_not_an_object_is_refused_at_its_index(string body, int index)
    {
        ShouldBeRefusedAt(body, index, null);
    }

    [Theory]
    [InlineData($$"""[{"timestamp":"{{T}}","input":"a","output":"b","user":"root"}]""", 0, "user")]
    [InlineData($$"""[{"extra":null,"timestamp":"{{T}}","input":"a","output":"b"}]""", 0, "extra")]
    [InlineData($$"""[{"timestamp":"{{T}}","input":"a","output":"b","Input":"a"}]""", 0, "Input")]
    [InlineData($$$"""[{{{Output}}},{"timestamp":"{{{T}}}","eventType":"output","data":"","elapsedTime":1,"nested":{"a":[1,2]}}]""", 1, "nested")]
    [InlineData($$"""[{"timestamp":"{{T}}","eventType":"response","requestId":"r","headers":null,"status":"200 OK","statusCode":200}]""", 0, "statusCode")]
    public void an_unknown_field_is_refused(string body, int index, string field)
    {
        ShouldBeRefusedAt(body, index, field);
    }

    [Theory]
    [InlineData($$"""[{"timestamp":"{{T}}","input":"a","input":"a","output":"b"}]""", 0, "input")]
    [InlineData($$"""[{"timestamp":"{{T}}","input":"a","output":"b","timestamp":"{{T}}"}]""", 0, "timestamp")]
    [InlineData($$"""[{{Output}},{"timestamp":"{{T}}","eventType":"output","data":"","data":null,"elapsedTime":1}]""", 1, "data")]
    [InlineData($$"""[{"timestamp":"{{T}}","inp\u0075t":"a","input":"a","output":"b"}]""", 0, "input")]
    public void a_field_given_twice_is_refused(string body, int index, string field)
    {
        ShouldBeRefusedAt(body, index, field);
    }

    [Theory]
    [InlineData("""{"input":"a","output":"b"}""", "timestamp")]
    [InlineData($$"""{"timestamp":"{{T}}","output":"b"}""", "input")]
    [InlineData($$"""{"timestamp":"{{T}}","input":"a"}""", "output")]
    [InlineData("""{}""", "timestamp")]
    [InlineData("""{"eventType":"output","data":"","elapsedTime":1}""", "timestamp")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"output","elapsedTime":1}""", "data")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"output","channelType":"terminal","data":"aGkK"}""", "elapsedTime")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","headers":null,"method":"GET","url":"/"}""", "requestId")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":"r","headers":null,"url":"/"}""", "method")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":"r","headers":null,"method":"GET"}""", "url")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"response","requestId":"r","headers":null}""", "status")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"response","headers":null,"status":"200 OK"}""", "requestId")]
    [InlineData("""{"eventType":"response","requestId":"r","headers":null,"status":"200 OK"}""", "timestamp")]
    public void a_missing_required_field_is_refused(string badEvent, string field)
    {
        ShouldBeRefusedAt($"[{badEvent}]", 0, field);
    }

    [Fact]
    public void a_missing_field_in_a_later_event_is_refused_at_that_index()
    {
        ShouldBeRefusedAt($$"""[{{Response}},{{Response}},{"timestamp":"{{T}}","eventType":"response","requestId":"r-3","headers":null}]""", 2, "status");
    }

    [Theory]
    [InlineData("""{"timestamp":1775565296,"input":"a","output":"b"}""", "timestamp")]
    [InlineData("""{"timestamp":null,"input":"a","output":"b"}""", "timestamp")]
    [InlineData($$"""{"timestamp":"{{T}}","input":42,"output":"b"}""", "input")]
    [InlineData($$"""{"timestamp":"{{T}}","input":["a"],"output":"b"}""", "input")]
    [InlineData($$"""{"timestamp":"{{T}}","input":"a","output":null}""", "output")]
    [InlineData($$$"""{"timestamp":"{{{T}}}","input":"a","output":{"rows":1}}""", "output")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"output","data":"aGkK","elapsedTime":"1.5"}""", "elapsedTime")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"output","data":"aGkK","elapsedTime":null}""", "elapsedTime")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"output","data":"aGkK","elapsedTime":true}""", "elapsedTime")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"output","data":[104,105],"elapsedTime":1}""", "data")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"output","data":7,"elapsedTime":1}""", "data")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":1,"data":"aGkK","elapsedTime":1}""", "eventType")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":null,"data":"aGkK","elapsedTime":1}""", "eventType")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"output","channelType":null,"data":"aGkK","elapsedTime":1}""", "channelType")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":7,"headers":null,"method":"GET","url":"/"}""", "requestId")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":"r","headers":"Accept: */*","method":"GET","url":"/"}""", "headers")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":"r","headers":[["Accept","*/*"]],"method":"GET","url":"/"}""", "headers")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":"r","headers":{"Accept":"*/*"},"method":"GET","url":"/"}""", "headers")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":"r","headers":{"Accept":null},"method":"GET","url":"/"}""", "headers")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":"r","headers":{"Content-Length":[42]},"method":"GET","url":"/"}""", "headers")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":"r","headers":{"Accept":["*/*",null]},"method":"GET","url":"/"}""", "headers")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":"r","headers":{"Accept":[["*/*"]]},"method":"GET","url":"/"}""", "headers")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":"r","headers":{"":["x"]},"method":"GET","url":"/"}""", "headers")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":"r","headers":{"Accept":["a"],"Accept":["b"]},"method":"GET","url":"/"}""", "headers")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":"r","headers":null,"method":["GET"],"url":"/"}""", "method")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":"r","headers":null,"method":"GET","url":null}""", "url")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"response","requestId":"r","headers":null,"status":200}""", "status")]
    [InlineData($$$"""{"timestamp":"{{{T}}}","eventType":"response","requestId":"r","headers":null,"status":"200 OK","body":{}}""", "body")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"response","requestId":"r","headers":null,"status":"200 OK","body":null}""", "body")]
    public void a_field_of_the_wrong_type_is_refused(string badEvent, string field)
    {
        ShouldBeRefusedAt($"[{badEvent}]", 0, field);
    }

    [Theory]
    [InlineData("2026-04-07T12:34:56")]
    [InlineData("2026-04-07t12:34:56Z")]
    [InlineData("2026-04-07T12:34:56z")]
    [InlineData("2026-04-07 12:34:56Z")]
    [InlineData("2026-04-07T12:34:56.1234567891Z")]
    [InlineData("2026-04-07T12:34:56.Z")]
    [InlineData("2026-04-07")]
    [InlineData("12:34:56Z")]
    [InlineData("2026-04-07T12:34Z")]
    [InlineData("2026-13-45T12:34:56Z")]
    [InlineData("2026-02-30T12:34:56Z")]
    [InlineData("2026-04-07T25:00:00Z")]
    [InlineData("2026-04-07T12:34:56+0200")]
    [InlineData("2026-04-07T12:34:56+2")]
    [InlineData("2026-04-07T12:34:56 +02:00")]
    [InlineData(" 2026-04-07T12:34:56Z")]
    [InlineData("2026-04-07T12:34:56Z ")]
    [InlineData("+2026-04-07T12:34:56Z")]
    [InlineData("Tue, 07 Apr 2026 12:34:56 GMT")]
    [InlineData("1775565296")]
    [InlineData("２０２６-04-07T12:34:56Z")]
    [InlineData("")]
    public void a_timestamp_that_is_not_rfc_3339_is_refused(string timestamp)
    {
        ShouldBeRefusedAt($$"""[{"timestamp":"{{timestamp}}","input":"a","output":"b"}]""", 0, "timestamp");
        ShouldBeRefusedAt($$"""[{{Output}},{"timestamp":"{{timestamp}}","eventType":"output","data":"","elapsedTime":1}]""", 1, "timestamp");
    }

    [Fact]
    public void a_timestamp_followed_by_a_newline_is_refused()
    {
        // "\n" is a JSON escape: the timestamp string ends in a line feed, which RFC 3339 does not allow
        // and which the canonical form would otherwise keep "verbatim".
        ShouldBeRefusedAt("""[{"timestamp":"2026-04-07T12:34:56Z\n","input":"a","output":"b"}]""", 0, "timestamp");
    }

    [Theory]
    [InlineData("aGk K")]
    [InlineData("aGkK ")]
    [InlineData(" aGkK")]
    [InlineData("aGkK\\n")]
    [InlineData("aGkK\\r\\naGkK")]
    [InlineData("aGk\\tK")]
    [InlineData("-_8=")]
    [InlineData("_w==")]
    [InlineData("aGk-")]
    [InlineData("QQ=")]
    [InlineData("QQ")]
    [InlineData("Q===")]
    [InlineData("=QQ=")]
    [InlineData("QQ==QQ==")]
    [InlineData("QQ=A")]
    [InlineData("QUJDR")]
    [InlineData("QUJDRA")]
    [InlineData("QR==")]
    [InlineData("aGkK!")]
    [InlineData("aGk=\\u0000")]
    [InlineData("é===")]
    public void data_that_is_not_strict_padded_standard_base64_is_refused(string data)
    {
        ShouldBeRefusedAt(SessionEventWithData(data), 0, "data");
        ShouldBeRefusedAt($$"""[{{Response}},{"timestamp":"{{T}}","eventType":"response","requestId":"r-2","headers":null,"status":"200 OK","body":"{{data}}"}]""", 1, "body");
    }

    [Theory]
    [InlineData("Output")]
    [InlineData("OUTPUT")]
    [InlineData("keystroke")]
    [InlineData("Request")]
    [InlineData("")]
    public void an_unknown_event_type_is_refused(string eventType)
    {
        ShouldBeRefusedAt($$"""[{"timestamp":"{{T}}","eventType":"{{eventType}}","data":"aGkK","elapsedTime":1}]""", 0, "eventType");
        ShouldBeRefusedAt($$"""[{{Output}},{"timestamp":"{{T}}","eventType":"{{eventType}}","data":"aGkK","elapsedTime":1}]""", 1, "eventType");
    }

    [Theory]
    [InlineData("x11")]
    [InlineData("Terminal")]
    [InlineData("shell")]
    [InlineData("")]
    public void an_unknown_channel_type_is_refused(string channelType)
    {
        ShouldBeRefusedAt($$"""[{"timestamp":"{{T}}","eventType":"output","channelType":"{{channelType}}","data":"aGkK","elapsedTime":1}]""", 0, "channelType");
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("-0.001")]
    [InlineData("-1e-300")]
    [InlineData("1e400")]
    [InlineData("-1e400")]
    public void a_negative_or_unrepresentable_elapsed_time_is_refused(string elapsedTime)
    {
        // JSON cannot carry NaN or Infinity; an overflowing literal is the closest a body gets.
        ShouldBeRefusedAt($$"""[{"timestamp":"{{T}}","eventType":"output","data":"aGkK","elapsedTime":{{elapsedTime}}}]""", 0, "elapsedTime");
    }

    [Theory]
    [InlineData("NaN", null, null)]
    [InlineData("Infinity", null, null)]
    [InlineData("-Infinity", null, null)]
    [InlineData("\"NaN\"", 0, "elapsedTime")]
    [InlineData("\"Infinity\"", 0, "elapsedTime")]
    public void nan_and_infinity_are_not_json_numbers(string elapsedTime, int? index, string? field)
    {
        var error = Refused($$"""[{"timestamp":"{{T}}","eventType":"output","data":"aGkK","elapsedTime":{{elapsedTime}}}]""");

        error.Index.ShouldBe(index);
        error.Field.ShouldBe(field);
    }

    [Theory]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":"r","headers":null,"method":"GET","url":"/","status":"200 OK"}""", "status")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"response","requestId":"r","headers":null,"status":"200 OK","method":"GET"}""", "method")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"response","requestId":"r","headers":null,"status":"200 OK","url":"/"}""", "url")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":"r","headers":null,"method":"GET","url":"/","channelType":"terminal"}""", "channelType")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"request","requestId":"r","headers":null,"method":"GET","url":"/","elapsedTime":1}""", "elapsedTime")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"output","data":"aGkK","elapsedTime":1,"requestId":"r"}""", "requestId")]
    [InlineData($$"""{"timestamp":"{{T}}","eventType":"output","data":"aGkK","elapsedTime":1,"input":"ls"}""", "input")]
    [InlineData($$"""{"timestamp":"{{T}}","input":"a","output":"b","elapsedTime":1}""", "elapsedTime")]
    [InlineData($$"""{"timestamp":"{{T}}","input":"a","output":"b","data":"aGkK"}""", "data")]
    [InlineData($$"""{"timestamp":"{{T}}","input":"a","output":"b","headers":null}""", "headers")]
    public void a_field_that_belongs_to_another_shape_is_refused(string badEvent, string field)
    {
        ShouldBeRefusedAt($"[{badEvent}]", 0, field);
    }

    [Fact]
    public void an_empty_request_id_is_refused()
    {
        ShouldBeRefusedAt($$"""[{"timestamp":"{{T}}","eventType":"request","requestId":"","headers":null,"method":"GET","url":"/"}]""", 0, "requestId");
    }

    [Theory]
    [InlineData($"[{Command},{Output}]", 1)]
    [InlineData($"[{Output},{Command}]", 1)]
    [InlineData($"[{Output},{Output},{Request}]", 2)]
    [InlineData($"[{Request},{Response},{Command},{Output}]", 2)]
    [InlineData($"[{Command},{Command},{Command},{Response}]", 3)]
    public void events_of_different_shapes_in_one_batch_are_refused_at_the_first_mismatch(string body, int index)
    {
        ShouldBeRefusedAt(body, index, null);
    }

    [Fact]
    public void the_first_bad_event_is_the_one_reported()
    {
        ShouldBeRefusedAt($$"""[{{Command}},{{Command}},{"timestamp":"{{T}}","input":1,"output":"b"},{"timestamp":"nope","input":"a","output":"b"}]""", 2, "input");
    }

    [Theory]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:56Z","input":"\ud800","output":"b"}]""")]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:56Z","input":"a","output":"\udc00 trailing"}]""")]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:56Z","inp\ud800ut":"a","output":"b"}]""")]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:56Z","eventType":"request","requestId":"r","headers":{"X-\ud800":["a"]},"method":"GET","url":"/"}]""")]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:56Z","eventType":"output","data":"\ud800AAA","elapsedTime":1}]""")]
    public void an_unpaired_surrogate_escape_is_refused_rather_than_thrown(string body)
    {
        RecordingError? error = null;
        var ok = Should.NotThrow(() => RecordingParser.TryParseBatch(Encoding.UTF8.GetBytes(body), out _, out error));

        ok.ShouldBeFalse();
        error.ShouldNotBeNull();
    }

    [Theory]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:56Z","input":"#","output":"b"}]""")]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:56Z","#":"a","input":"a","output":"b"}]""")]
    [InlineData("""[{"timestamp":"2026-04-07T12:34:56Z#","input":"a","output":"b"}]""")]
    public void invalid_utf8_in_a_string_is_refused_rather_than_thrown(string template)
    {
        var body = Encoding.UTF8.GetBytes(template).SelectMany(b => b == (byte)'#' ? new byte[] { 0xC3, 0x28 } : [b]).ToArray();

        RecordingError? error = null;
        var ok = Should.NotThrow(() => RecordingParser.TryParseBatch(body, out _, out error));

        ok.ShouldBeFalse();
        error.ShouldNotBeNull();
    }

    [Fact]
    public void invalid_utf8_in_legacy_logs_is_refused_rather_than_thrown()
    {
        var body = Encoding.UTF8.GetBytes("""{"logs":[{"timestamp":"2026-04-07T12:34:56Z","input":"#","output":"b"}]}""")
            .SelectMany(b => b == (byte)'#' ? new byte[] { 0xFF } : [b]).ToArray();

        RecordingError? error = null;
        var ok = Should.NotThrow(() => RecordingParser.TryParseLegacyLogs(body, out _, out error));

        ok.ShouldBeFalse();
        error.ShouldNotBeNull();
    }

    // ---- the legacy body ----

    [Fact]
    public void legacy_logs_are_read_into_the_same_canonical_form_as_a_batch()
    {
        var legacy = ParseLegacy($$"""
            { "logs" : [ {{Output}} ,
                         {{Output.Replace("aGkK", "a\\/b+")}} ] }
            """);
        var batch = Parse($"[{Output},{Output.Replace("aGkK", "a/b+")}]");

        Canonical(legacy).ShouldBe(Canonical(batch));
        legacy.Sha256().ShouldBe(batch.Sha256());
        legacy.Kind.ShouldBe(RecordedEventKind.SessionEvent);
        legacy.EventCount.ShouldBe(2);
    }

    [Theory]
    [InlineData("[]", null)]
    [InlineData("[{\"logs\":[]}]", null)]
    [InlineData("null", null)]
    [InlineData("\"logs\"", null)]
    [InlineData("{}", "logs")]
    [InlineData("""{"logs":[],"extra":1}""", "extra")]
    [InlineData("""{"sessionId":"s","logs":[]}""", "sessionId")]
    [InlineData("""{"Logs":[]}""", "Logs")]
    [InlineData("""{"logs":[],"logs":[]}""", "logs")]
    [InlineData("""{"logs":{}}""", "logs")]
    [InlineData("""{"logs":null}""", "logs")]
    [InlineData("""{"logs":"[]"}""", "logs")]
    [InlineData("""{"logs":3}""", "logs")]
    public void a_legacy_body_of_the_wrong_shape_is_refused(string body, string? field)
    {
        ShouldBeRefusedAsABody(RefusedLegacy(body), field);
    }

    [Theory]
    [InlineData("{")]
    [InlineData("""{"logs":[""")]
    [InlineData("""{"logs":[]""")]
    [InlineData("""{"logs":[],}""")]
    [InlineData("""{"logs":[]} x""")]
    [InlineData("""{"logs":[]}{}""")]
    public void a_malformed_legacy_body_is_refused(string body)
    {
        ShouldBeRefusedAsABody(RefusedLegacy(body));
    }

    [Fact]
    public void an_event_error_inside_legacy_logs_names_its_index()
    {
        var error = RefusedLegacy($$"""{"logs":[{{Command}},{{Command}},{"timestamp":"{{T}}","input":"a"}]}""");

        error.Index.ShouldBe(2);
        error.Field.ShouldBe("output");
        error.Message.ShouldContain("event 2");
    }

    [Fact]
    public void legacy_logs_may_not_mix_shapes_either()
    {
        var error = RefusedLegacy($$"""{"logs":[{{Request}},{{Output}}]}""");

        error.Index.ShouldBe(1);
        error.Field.ShouldBeNull();
        error.Message.ShouldContain("event 1");
    }
}
