using PamEventStore.Storage;

namespace PamEventStore.Tests.Storage;

public sealed class the_local_data_directory : IDisposable
{
    private readonly LocalDataDirectory _data = new(Path.Combine(Path.GetTempPath(), $"pamstore-data-{Guid.NewGuid():N}"));

    [Fact]
    public async Task processes_creating_a_secret_at_once_all_read_the_one_that_won_never_a_half_written_one()
    {
        using var start = new ManualResetEventSlim();
        var read = new string[8];
        var threads = Enumerable.Range(0, read.Length).Select(i => new Thread(() =>
        {
            start.Wait();
            read[i] = _data.ReadOrCreateSecret("key", () =>
            {
                // Slow to produce: the others arrive while it is being written.
                Thread.Sleep(300);
                return $"secret-{i}";
            });
        })).ToList();
        threads.ForEach(thread => thread.Start());

        start.Set();
        await Task.Run(() => threads.ForEach(thread => thread.Join()));

        read.Distinct().ShouldHaveSingleItem().ShouldStartWith("secret-");
        Directory.GetFiles(_data.Path).Select(Path.GetFileName).ShouldBe(["key"]);
        if (!OperatingSystem.IsWindows()) File.GetUnixFileMode(_data.PathOf("key")).ShouldBe(UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    [Fact]
    public void an_existing_secret_is_read_and_never_created_again()
    {
        _data.ReadOrCreateSecret("key", () => "first").ShouldBe("first");

        _data.ReadOrCreateSecret("key", () => throw new InvalidOperationException("created again")).ShouldBe("first");
    }

    public void Dispose()
    {
        if (Directory.Exists(_data.Path)) Directory.Delete(_data.Path, recursive: true);
    }
}
