using PamEventStore.Storage;

namespace PamEventStore.Tests.Storage;

public sealed class the_local_data_directory : IDisposable
{
    private readonly LocalDataDirectory _data = new(Path.Combine(Path.GetTempPath(), $"pamstore-data-{Guid.NewGuid():N}"));

    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    public async Task processes_creating_a_secret_at_once_all_read_the_one_that_won_and_it_stays(int slowness)
    {
        for (var round = 0; round < (slowness == 0 ? 200 : 3); round++)
        {
            var name = $"key-{round}";
            using var start = new ManualResetEventSlim();
            var read = new string[8];
            var threads = Enumerable.Range(0, read.Length).Select(i => new Thread(() =>
            {
                start.Wait();
                read[i] = _data.ReadOrCreateSecret(name, () =>
                {
                    // Slow to produce, or not at all: the others arrive while it is being written, or at the same moment.
                    if (slowness > 0) Thread.Sleep(slowness);
                    return $"secret-{i}";
                });
            })).ToList();
            threads.ForEach(thread => thread.Start());

            start.Set();
            await Task.Run(() => threads.ForEach(thread => thread.Join()));

            read.Distinct().ShouldHaveSingleItem().ShouldStartWith("secret-");
            File.ReadAllText(_data.PathOf(name)).ShouldBe(read[0], $"round {round}: the file was replaced after it was read");
            if (!OperatingSystem.IsWindows()) File.GetUnixFileMode(_data.PathOf(name)).ShouldBe(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        Directory.GetFiles(_data.Path).Select(Path.GetFileName).ShouldAllBe(file => file!.StartsWith("key-") || file == ".secrets.lock");
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
