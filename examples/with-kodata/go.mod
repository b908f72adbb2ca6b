module example.com/with-kodata

go 1.22
