failhost("localhost", "address", "127.9.9.9")
failhost("localhost", "community", "genesis")
failsvc{ name = "a", interval = 0.2, start = function() return "UP" end, stop = function() return "FAIL" end }
